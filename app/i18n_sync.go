package app

// Texts of sync, the exceptions inbox and offline allowances.

func init() {
	// Keys other features may define as well: added only where missing.
	for k, v := range map[string][2]string{
		"error.unreachable":          {"无法连接同步服务器", "Sync server unreachable"},
		"field.server":               {"同步服务器", "sync server"},
		"field.token":                {"注册令牌", "enrolment token"},
		"field.action":               {"处理方式", "action"},
		"field.member":               {"会员", "member"},
		"field.account":              {"账户", "account"},
		"reason.frozen":              {"账户已冻结", "Account frozen"},
		"reason.offline_not_allowed": {"离线时本活动不可核销", "This campaign cannot be redeemed offline"},
		"reason.offline_value_cap":   {"超出离线核销面值上限", "Above the offline face value cap"},
		"reason.offline_count":       {"本机离线核销次数已达上限", "Offline redemptions on this device used up"},
		"reason.offline_stale":       {"离线太久，请先联网同步", "Offline for too long: sync first"},
		"reason.offline_allowance":   {"离线额度不足", "Offline allowance too small"},
		"why.frozen":                 {"账户 %s 已冻结：请先处理相关异常", "account %s is frozen until its case is settled"},
		"why.offline_allowance":      {"离线时本机最多还能从该账户扣 %s，本次需要 %s（联网时可申请更多离线额度）", "offline, this device may take %s more from this account; %s is asked (request a larger allowance while online)"},
		"why.offline_not_allowed":    {"连不上服务器时本活动不可核销", "this campaign cannot be redeemed while the server cannot be reached"},
		"why.offline_value_cap":      {"离线时不可核销面值超过上限的券", "offline, codes above the campaign's face value cap cannot be redeemed"},
		"why.offline_count":          {"本机离线核销次数已达本活动上限", "this device used up the campaign's offline redemptions"},
		"why.offline_stale":          {"离线太久：请先联网同步再核销", "offline for too long: sync before redeeming"},
		"col.kind":                   {"类型", "Kind"},
		"col.subject":                {"对象", "Subject"},
		"col.action":                 {"处理", "Action"},
		"col.note":                   {"备注", "Note"},
		"col.granted":                {"额度", "Granted"},
		"col.spent":                  {"已用", "Spent"},
		"col.expires":                {"到期", "Expires"},
		"col.account":                {"账户", "Account"},
	} {
		if !Has(k) {
			messages[k] = v
		}
	}
	addMessages(map[string][2]string{
		"sync.stage.push":   {"上传变更", "pushing"},
		"sync.stage.upload": {"上传券码", "uploading codes"},
		"sync.stage.codes":  {"下载券码", "pulling codes"},
		"sync.stage.log":    {"下载变更", "pulling changes"},

		"sync.registered":     {"本机已注册到同步服务器 %s（商户 %s，服务器已有本机 %d 条变更）。运行 kameng sync 开始同步", "This device is registered with %s (merchant %s; the server has %d of its changes). Run kameng sync to sync"},
		"sync.joined":         {"本机已加入商户 %s，门店「%s」：已下载 %d 条变更、%d 个券码", "This device joined merchant %s in store %q: pulled %d changes and %d codes"},
		"sync.done":           {"同步完成：上传 %d 条变更，下载 %d 条变更、%d 个券码", "Synced: pushed %d changes, pulled %d changes and %d codes"},
		"sync.flagged":        {"服务器标记 %d 条、拒绝 %d 条：请查看 kameng cases", "The server flagged %d and rejected %d: see kameng cases"},
		"sync.reset":          {"服务器已从备份恢复，本机已重新下载全部数据", "The server was restored from a backup; this device pulled everything again"},
		"sync.round_ok":       {"%s 同步完成：上传 %d，下载 %d（%d 毫秒）", "%s synced: pushed %d, pulled %d (%d ms)"},
		"sync.round_failed":   {"%s 同步失败：%s（%s 后重试）", "%s sync failed: %s (retrying in %s)"},
		"sync.loop_start":     {"后台同步已启动，每 %s 一次；按 Ctrl-C 停止", "Syncing every %s; press Ctrl-C to stop"},
		"sync.loop_stopped":   {"同步已停止", "Sync stopped"},
		"sync.not_registered": {"本机尚未注册到同步服务器", "This device is not registered with a sync server"},
		"sync.never":          {"从未", "never"},

		"sync.k.server":      {"同步服务器", "Server"},
		"sync.k.merchant":    {"商户", "Merchant"},
		"sync.k.device":      {"本机", "Device"},
		"sync.k.epoch":       {"服务器纪元", "Epoch"},
		"sync.k.pending":     {"待上传", "Pending"},
		"sync.k.acked":       {"已确认到", "Acknowledged up to"},
		"sync.k.last_sync":   {"上次同步", "Last sync"},
		"sync.k.last_error":  {"上次错误", "Last error"},
		"sync.k.skew":        {"与服务器时差", "Clock difference"},
		"sync.k.open_cases":  {"待处理异常", "Open cases"},
		"sync.k.rejected":    {"被拒/被标记", "Rejected or flagged"},
		"sync.k.skipped":     {"无法应用（需升级）", "Not applied (upgrade needed)"},
		"sync.k.cursor":      {"同步位置 %s", "Cursor %s"},
		"sync.k.loop":        {"后台同步", "Background sync"},
		"sync.loop.running":  {"进行中", "running"},
		"sync.loop.idle":     {"等待下一轮（%s）", "waiting (next at %s)"},
		"sync.loop.backoff":  {"连接失败，%s 后重试", "failing; next try at %s"},
		"sync.skew_warning":  {"本机时钟与服务器相差 %s：请校准时间", "This device's clock differs from the server's by %s: set the time"},
		"sync.join_progress": {"加入商户", "joining"},

		"case.DOUBLE_REDEMPTION": {"重复核销", "Double redemption"},
		"case.OVERDRAFT":         {"透支", "Overdraft"},
		"case.CAMPAIGN_EDIT":     {"活动修改冲突", "Conflicting campaign edit"},
		"case.LATE_OFFLINE":      {"离线核销过晚上传", "Late offline redemption"},
		"case.CLOCK_SKEW":        {"时钟偏差", "Clock skew"},
		"case.status.open":       {"待处理", "open"},
		"case.status.resolved":   {"已处理", "resolved"},
		"action.accept":          {"接受", "accept"},
		"action.reverse":         {"撤销后一笔", "reverse the later one"},
		"action.freeze":          {"冻结账户", "freeze the account"},
		"action.charge":          {"向顾客收取差额", "charge the customer"},
		"action.write_off":       {"核销损失", "write off"},
		"msg.case_resolved":      {"异常 %s 已处理：%s（下次同步时通知服务器）", "Case %s resolved: %s (the server hears at the next sync)"},
		"msg.case_confirm":       {"以「%[2]s」处理异常 %[1]s", "resolve case %s by %s"},
		"msg.case_detail":        {"详情", "Detail"},
		"case.party.winner":      {"有效核销", "Stands"},
		"case.party.loser":       {"被撤销的核销", "Undone"},
		"case.party":             {"%s · 门店 %s · 终端 %s · 收银员 %s · 订单 %s（核销号 %s）", "%s · store %s · device %s · cashier %s · order %s (redemption %s)"},
		"msg.allowance_granted":  {"已获得 %s 的离线额度 %s（已用 %s，%s 到期）", "Offline allowance for %s: %s (spent %s, expires %s)"},
		"msg.allowance_none":     {"服务器未给予离线额度（余额不足或账户已冻结）", "The server granted no allowance (balance too low or account frozen)"},
		"col.case":               {"异常", "Case"},

		"why.unreachable":    {"连不上同步服务器 %s：请检查网络或稍后再试（数据已保存在本机，联网后会自动上传）", "cannot reach the sync server %s: check the network or try later (everything is kept on this device and goes up once it is back)"},
		"why.not_registered": {"本机尚未注册到同步服务器：请先运行 kameng device register", "this device is not registered with a sync server: run kameng device register"},
		"why.server_refused": {"同步服务器拒绝了请求（%s）：%s", "the sync server refused (%s): %s"},
	})
	for why, params := range map[string][]string{
		"unreachable":         {"server"},
		"not_registered":      {},
		"server_refused":      {"server_code", "server_message"},
		"frozen":              {"id"},
		"offline_allowance":   {"have", "want"},
		"offline_not_allowed": {},
		"offline_value_cap":   {},
		"offline_count":       {},
		"offline_stale":       {},
	} {
		if _, ok := explanations[why]; !ok {
			explanations[why] = params
		}
	}
}
