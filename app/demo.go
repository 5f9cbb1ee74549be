package app

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/kameng/kameng/core"
	"github.com/kameng/kameng/core/store"
)

// DemoPassword is the demo owner's password (printed by `kameng demo`).
const DemoPassword = "kameng-demo"

// DemoSummary counts what the demo created.
type DemoSummary struct {
	Stores      int    `json:"stores"`
	Campaigns   int    `json:"campaigns"`
	Codes       int64  `json:"codes"`
	Redemptions int    `json:"redemptions"`
	RolledBack  int    `json:"rolled_back"`
	Members     int    `json:"members"`
	Topups      int    `json:"topups"`
	Payments    int    `json:"payments"`
	Owner       string `json:"owner"`
	Password    string `json:"password"`
}

// Demo fills a new data directory with a realistic merchant: three stores, campaigns
// of every kind, codes (some given to phone numbers), card keys with secrets, and four
// weeks of redemptions and rollbacks. The history is written through the same use
// cases as real work, with the clock moved back, so the audit chain, ledger and
// rollups are all genuine.
func Demo(dir string, seed uint64, progress func(int64)) (*App, *DemoSummary, error) {
	now := time.Now()
	clock := &core.FixedClock{T: now.AddDate(0, 0, -29)}
	a, err := Init(dir, InitOptions{Merchant: "悦享咖啡", Store: "总店·国贸", TimeZone: core.DefaultTimeZone, Device: "前台收银机",
		Owner: "owner", Password: DemoPassword}, clock)
	if err != nil {
		return nil, nil, err
	}
	a.Lang = "zh"
	fail := func(err error) (*App, *DemoSummary, error) { return a, nil, err }
	sum := &DemoSummary{Stores: 1, Owner: "owner", Password: DemoPassword}
	owner := a.Actor
	actors := []*store.Actor{owner}
	for _, name := range []string{"朝阳大悦城店", "浦东陆家嘴店"} {
		s, err := a.DB.AddStore(owner, name, core.DefaultTimeZone)
		if err != nil {
			return fail(err)
		}
		x := *owner
		x.Store = *s
		actors = append(actors, &x)
		sum.Stores++
	}
	for _, op := range []struct {
		name string
		role core.Role
	}{{"manager", core.RoleManager}, {"cashier", core.RoleCashier}, {"tech", core.RoleTechnician}} {
		if _, err := a.DB.AddOperator(owner, op.name, op.role, "", core.HashPassword(DemoPassword)); err != nil {
			return fail(err)
		}
	}
	type plan struct {
		in    CampaignInput
		codes int64
	}
	end := now.AddDate(0, 2, 0).Format("2006-01-02")
	plans := []plan{
		{CampaignInput{Name: Ptr("新客立减20元"), Kind: Ptr("amount_off"), AmountOff: Ptr("20"), MinSpend: Ptr("68"), To: Ptr(end), Description: Ptr("满68减20，新客专享")}, 400},
		{CampaignInput{Name: Ptr("无门槛5元券"), Kind: Ptr("amount_off"), AmountOff: Ptr("5"), To: Ptr(end), PerMember: Ptr("2")}, 300},
		{CampaignInput{Name: Ptr("工作日下午茶85折"), Kind: Ptr("percent_off"), Percent: Ptr("8.5折"), MaxDiscount: Ptr("30"), Weekdays: Ptr("1-5"), Hours: Ptr("14:00-18:00"), To: Ptr(end)}, 300},
		{CampaignInput{Name: Ptr("会员月卡·次卡10次"), Kind: Ptr("amount_off"), AmountOff: Ptr("32"), Uses: Ptr("10"), ValidDays: Ptr("60")}, 60},
		{CampaignInput{Name: Ptr("悦享礼品卡200元"), Kind: Ptr("gift_card"), Face: Ptr("200"), Prefix: Ptr("GC"), Length: Ptr("14")}, 120},
		{CampaignInput{Name: Ptr("视频会员月卡（卡密）"), Kind: Ptr("card_key"), Face: Ptr("25"), Alphabet: Ptr("0123456789"), Length: Ptr("15"), Group: Ptr("5")}, 80},
	}
	var camps []*core.Campaign
	var codes [][]string
	for i, p := range plans {
		c, err := a.CreateCampaign(p.in)
		if err != nil {
			return fail(fmt.Errorf("demo campaign %d: %w", i, err))
		}
		if _, err := a.DB.GenerateCodes(owner, c.ID, p.codes, nil); err != nil {
			return fail(err)
		}
		var list []string
		if err := a.DB.EachCode(store.CodeFilter{Campaign: c.ID}, false, func(k *core.Code) error {
			list = append(list, k.Code)
			return nil
		}); err != nil {
			return fail(err)
		}
		camps, codes = append(camps, c), append(codes, list)
		sum.Campaigns++
		sum.Codes += p.codes
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	if err := demoLoyalty(a, owner, actors, camps); err != nil {
		return fail(err)
	}
	phones := make([]string, 40)
	for i := range phones {
		phones[i] = fmt.Sprintf("1%d%09d", 3+rng.IntN(7), rng.IntN(1_000_000_000))
	}
	next := make([]int, len(camps))
	for ci := range camps {
		n := len(codes[ci]) / 3
		for j := 0; j < n; j++ {
			if _, err := a.DB.Distribute(owner, []string{codes[ci][j]}, phones[rng.IntN(len(phones))]); err != nil {
				return fail(err)
			}
		}
		if _, err := a.DB.Distribute(owner, codes[ci][n:n+n/2], ""); err != nil {
			return fail(err)
		}
	}
	// The phones' owners sign up as members: what was sent to them becomes theirs, and
	// each gets the welcome coupon.
	for i := range phones {
		in := store.MemberInput{Phone: phones[i], Name: demoNames[i%len(demoNames)], Consent: rng.IntN(5) != 0,
			Birthday: fmt.Sprintf("%d-%02d-%02d", 1970+rng.IntN(35), 1+rng.IntN(12), 1+rng.IntN(28))}
		if i%7 == 0 {
			in.Tags = "常客"
		}
		if _, err := a.DB.AddMember(actors[i%len(actors)], in); err != nil {
			return fail(fmt.Errorf("demo member %d: %w", i, err))
		}
		sum.Members++
	}
	// Four weeks of trade, 09:00–21:00 each day: each store redeems a handful of codes;
	// a few are undone.
	loc := owner.Store.Location()
	first := now.In(loc).AddDate(0, 0, -28)
	var last []*core.Redemption
	for day := 0; day < 28; day++ {
		y, m, d := first.AddDate(0, 0, day).Date()
		open := time.Date(y, m, d, 9, 0, 0, 0, loc)
		var events []*store.Actor
		for si, act := range actors {
			for k := 0; k < 3+rng.IntN(5)+si; k++ {
				events = append(events, act)
			}
		}
		rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
		step := 12 * time.Hour / time.Duration(len(events)+1)
		for i, act := range events {
			clock.T = open.Add(time.Duration(i+1)*step + time.Duration(rng.IntN(int(step/time.Minute)))*time.Minute/2)
			ci := rng.IntN(len(camps))
			if next[ci] >= len(codes[ci]) {
				continue
			}
			code := codes[ci][next[ci]]
			if camps[ci].Kind != core.KindGiftCard || rng.IntN(3) == 0 {
				next[ci]++
			}
			order := core.Order{Amount: core.Amount(3000 + rng.IntN(150)*100), Ref: fmt.Sprintf("T%s%04d", clock.T.Format("0102"), rng.IntN(10000))}
			if camps[ci].Kind == core.KindGiftCard {
				order.Debit = core.Amount(1000 + rng.IntN(6)*500)
			}
			// Half the customers are members: they give their phone, pay part from the
			// wallet (topping up when it runs low) and earn points on the purchase.
			member := ""
			if rng.IntN(2) == 0 {
				member = phones[rng.IntN(len(phones))]
				order.Member = member
			}
			res, err := a.DB.Redeem(act, code, order, "")
			if err != nil {
				return fail(err)
			}
			if res.Redemption != nil {
				sum.Redemptions++
				last = append(last, res.Redemption)
			}
			if member != "" {
				if err := demoMemberPurchase(a, act, member, order, rng, sum); err != nil {
					return fail(err)
				}
			}
		}
		if len(last) > 0 && rng.IntN(3) == 0 {
			r := last[rng.IntN(len(last))]
			clock.T = clock.T.Add(10 * time.Minute)
			if _, err := a.DB.Rollback(owner, r.ID, "顾客退单", false, 0); err == nil {
				sum.RolledBack++
			}
		}
		last = last[:0]
		if progress != nil {
			progress(int64(day + 1))
		}
	}
	a.DB.Clock = core.SystemClock
	a.Clock = core.SystemClock
	return a, sum, nil
}

var demoNames = []string{"王芳", "李娜", "张伟", "刘洋", "陈静", "杨磊", "赵敏", "黄晓明", "周婷", "吴强", "徐丽", "孙浩",
	"马超", "朱琳", "胡军", "郭靖", "林菲", "何佳", "高翔", "罗兰"}

// demoLoyalty sets up what a coffee chain would: three tiers, top-up bonuses, a points
// reward, welcome/birthday/comeback coupons and a franchise split.
func demoLoyalty(a *App, owner *store.Actor, actors []*store.Actor, camps []*core.Campaign) error {
	for _, t := range []core.Tier{{Name: "普通会员", MultiplierBP: 10000}, {Name: "银卡", MinSpend: 50000, MultiplierBP: 12000},
		{Name: "金卡", MinSpend: 200000, MultiplierBP: 15000}} {
		if _, err := a.DB.SetTier(owner, t); err != nil {
			return err
		}
	}
	if _, err := a.DB.SetLoyalty(owner, func(l *core.Loyalty) error {
		l.Bonuses = []core.TopupBonus{{Min: 10000, Bonus: 2000}, {Min: 50000, Bonus: 12000}}
		l.Rewards[camps[1].ID] = 300      // 无门槛5元券 for 300 points
		l.CampaignBonus[camps[2].ID] = 20 // 下午茶: 20 extra points
		return nil
	}); err != nil {
		return err
	}
	for _, r := range []core.IssueRule{{Kind: core.IssueWelcome, CampaignID: camps[0].ID}, {Kind: core.IssueBirthday, CampaignID: camps[1].ID},
		{Kind: core.IssueIdle, CampaignID: camps[1].ID, Threshold: 21}, {Kind: core.IssueSpend, CampaignID: camps[1].ID, Threshold: 100000}} {
		if _, err := a.DB.AddIssueRule(owner, r); err != nil {
			return err
		}
	}
	for _, r := range []core.SplitRule{
		{Scope: core.SplitDefault, Parties: []core.Share{{Party: "品牌", PercentBP: 10000}}, Remainder: "品牌"},
		{Scope: core.SplitStore, ScopeID: actors[1].Store.ID, Parties: []core.Share{{Party: "品牌", PercentBP: 4000}, {Party: "加盟商", PercentBP: 5500}, {Party: "平台", PercentBP: 500}}, Remainder: "加盟商"},
		{Scope: core.SplitCampaign, ScopeID: camps[4].ID, Parties: []core.Share{{Party: "品牌", PercentBP: 7000}, {Party: "加盟商", PercentBP: 3000}}, Remainder: "品牌"},
	} {
		if _, err := a.DB.SetSplitRule(owner, r); err != nil {
			return err
		}
	}
	return nil
}

// demoMemberPurchase records a member's purchase: sometimes a wallet payment (with a
// top-up first when the balance is short). The redemption made with the member's
// phone already recorded the purchase and its points.
func demoMemberPurchase(a *App, act *store.Actor, member string, order core.Order, rng *rand.Rand, sum *DemoSummary) error {
	if rng.IntN(3) == 0 {
		pay := order.Amount / 2
		w, err := a.DB.WalletShow(member, 1)
		if err != nil {
			return err
		}
		if w.Balance < pay {
			if _, err := a.DB.Topup(act, member, core.Amount(10000+rng.IntN(3)*20000), "", ""); err != nil {
				return err
			}
			sum.Topups++
		}
		if _, err := a.DB.Pay(act, member, pay, order.Ref, ""); err != nil {
			return err
		}
		sum.Payments++
	}
	return nil
}
