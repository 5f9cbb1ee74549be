package app

// Texts of kameng serve and kameng server.
func init() {
	addMessages(map[string][2]string{
		"field.srv_listen":   {"监听地址", "listen address"},
		"field.srv_db":       {"服务器数据库", "server database"},
		"field.srv_tls":      {"TLS 证书", "TLS certificate"},
		"field.srv_ttl":      {"有效期", "validity"},
		"field.srv_rate":     {"限流", "rate limit"},
		"field.srv_merchant": {"商户 ID", "merchant id"},

		"srv.listening":       {"卡盟同步服务已启动：%s（%s，数据库 %s）；按 Ctrl+C 停止", "Kameng sync server listening on %s (%s, %s store); Ctrl+C stops it"},
		"srv.stopped":         {"同步服务已停止", "Sync server stopped"},
		"srv.token_created":   {"注册令牌（只显示这一次，%s 前有效）：", "Enrolment token (shown only now, valid until %s):"},
		"srv.token_joins":     {"用此令牌注册的终端加入商户 %s", "A device registering with it joins merchant %s"},
		"srv.token_founds":    {"用此令牌注册的第一台终端将在服务器上建立它的商户", "The first device registering with it founds its merchant on the server"},
		"srv.epoch_confirm":   {"更新商户 %s 的同步纪元（仅在恢复备份后使用）", "bump the sync epoch of merchant %s (only after restoring a backup)"},
		"srv.epoch_bumped":    {"商户 %s 的同步纪元已更新为 %d：各终端下次同步时将重新拉取全部数据，未上传的记录不会丢失", "Merchant %s is now at sync epoch %d: devices pull everything again at their next sync and keep what they have not pushed yet"},
		"srv.tls_pair":        {"证书和私钥要同时给出", "give both the certificate and the key"},
		"srv.bad_listen":      {"无法在此地址监听", "cannot listen on this address"},
		"srv.plain_http_warn": {"注意：未启用 TLS，令牌以明文传输；对外提供服务时请加 --tls-cert 和 --tls-key", "Note: no TLS, tokens travel in clear text; add --tls-cert and --tls-key when serving beyond this machine"},
	})
}
