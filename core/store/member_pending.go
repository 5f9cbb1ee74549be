package store

import "github.com/kameng/kameng/core"

// PENDING: replaced by the member work (member.go / issue.go); delete this file then.

// afterPurchase re-evaluates the member's tier and fires spend-triggered issuing rules
// once a purchase (points earn, wallet pay, redemption with a member) is recorded.
func (t *tx) afterPurchase(memberID string) error { return nil }

// handOut gives one code of campaign c to the member (an unused code of the campaign,
// or a freshly generated one), records who received it, and returns the code.
func (t *tx) handOut(c *core.Campaign, memberID, why string) (string, error) {
	return "", core.Errorf(core.ErrInternal, "handing out codes is not built yet")
}
