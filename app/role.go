package app

import "github.com/kameng/kameng/core"

// Actions gated by role. Roles are checked here, in one place, never in the screens.
const (
	ActCampaignView = "view campaigns"
	ActCampaignEdit = "create or edit campaigns"
	ActCodesIssue   = "generate or import codes"
	ActCodesView    = "list codes"
	ActCodesExport  = "export codes"
	ActDistribute   = "distribute codes"
	ActVoid         = "void codes"
	ActReveal       = "reveal secrets and phone numbers"
	ActCheck        = "check codes"
	ActRedeem       = "redeem codes"
	ActRollback     = "roll back redemptions"
	ActRollbackAny  = "roll back any redemption"
	ActReport       = "read reports"
	ActAudit        = "verify the audit chain"
	ActStaff        = "manage stores and operators"
	ActDoctor       = "run diagnostics"

	ActMemberView    = "look up members"
	ActMemberEdit    = "add or edit members"
	ActMemberMerge   = "merge members"
	ActMemberErase   = "anonymise members"
	ActWallet        = "top up and charge wallets"
	ActWalletRefund  = "refund wallet payments"
	ActPoints        = "earn and spend points"
	ActPointsAdjust  = "adjust points by hand"
	ActLoyaltyConfig = "set tiers, points, bonuses and issuing rules"
	ActSettleView    = "read settlement statements"
	ActSettleRules   = "set settlement split rules"

	ActSync         = "sync with the server"
	ActSyncSetup    = "register this device with a sync server"
	ActCasesView    = "look at exception cases"
	ActCasesResolve = "resolve exception cases"
	ActAllowance    = "reserve offline allowances"
)

var allowed = map[core.Role]map[string]bool{
	core.RoleOwner: set(ActCampaignView, ActCampaignEdit, ActCodesIssue, ActCodesView, ActCodesExport, ActDistribute, ActVoid,
		ActReveal, ActCheck, ActRedeem, ActRollback, ActRollbackAny, ActReport, ActAudit, ActStaff, ActDoctor,
		ActMemberView, ActMemberEdit, ActMemberMerge, ActMemberErase, ActWallet, ActWalletRefund, ActPoints, ActPointsAdjust,
		ActLoyaltyConfig, ActSettleView, ActSettleRules, ActSync, ActSyncSetup, ActCasesView, ActCasesResolve, ActAllowance),
	core.RoleManager: set(ActCampaignView, ActCampaignEdit, ActCodesIssue, ActCodesView, ActCodesExport, ActDistribute, ActVoid,
		ActReveal, ActCheck, ActRedeem, ActRollback, ActRollbackAny, ActReport, ActAudit, ActDoctor,
		ActMemberView, ActMemberEdit, ActMemberMerge, ActMemberErase, ActWallet, ActWalletRefund, ActPoints, ActPointsAdjust,
		ActLoyaltyConfig, ActSettleView, ActSync, ActSyncSetup, ActCasesView, ActCasesResolve, ActAllowance),
	core.RoleCashier: set(ActCampaignView, ActCodesView, ActDistribute, ActCheck, ActRedeem, ActRollback,
		ActMemberView, ActMemberEdit, ActWallet, ActWalletRefund, ActPoints, ActSync, ActAllowance),
	core.RoleTechnician: set(ActCampaignView, ActReport, ActAudit, ActDoctor, ActCheck, ActSettleView,
		ActSync, ActSyncSetup, ActCasesView),
}

func set(acts ...string) map[string]bool {
	m := map[string]bool{}
	for _, a := range acts {
		m[a] = true
	}
	return m
}

// Can reports whether the signed-in operator may do an action.
func (a *App) Can(action string) bool {
	return a.Actor != nil && allowed[a.Actor.Operator.Role][action]
}

// require fails with a forbidden error naming the action and role.
func (a *App) require(action string) error {
	if a.Can(action) {
		return nil
	}
	role := "none"
	if a.Actor != nil {
		role = string(a.Actor.Operator.Role)
	}
	return core.Forbidden(action, role)
}
