package app

import "github.com/spf13/cobra"

// memberCmd groups member commands: add, find, show, edit, merge, anonymise, tiers, issuing rules.
func (c *cli) memberCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "member", Short: "members / 会员"}
	cmd.AddCommand(c.memberMergeCmd())
	return cmd
}
