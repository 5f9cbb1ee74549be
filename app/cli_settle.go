package app

import "github.com/spf13/cobra"

// settleCmd groups settlement commands.
func (c *cli) settleCmd() *cobra.Command {
	return &cobra.Command{Use: "settle", Short: "settlement split and statements / 结算分账"}
}

// remindCmd lists codes and points about to expire.
func (c *cli) remindCmd() *cobra.Command {
	return &cobra.Command{Use: "remind", Short: "codes and points expiring soon / 到期提醒"}
}
