package app

import "github.com/spf13/cobra"

// walletCmd groups stored-value commands.
func (c *cli) walletCmd() *cobra.Command {
	return &cobra.Command{Use: "wallet", Short: "stored value / 储值"}
}

// pointsCmd groups points commands.
func (c *cli) pointsCmd() *cobra.Command {
	return &cobra.Command{Use: "points", Short: "member points / 积分"}
}

// memberMergeCmd folds one member record into another.
func (c *cli) memberMergeCmd() *cobra.Command {
	return &cobra.Command{Use: "merge FROM INTO", Short: "merge two member records / 合并会员"}
}
