// Command kameng is the merchant back-office for coupons, gift cards and card keys.
package main

import (
	"os"
	_ "time/tzdata" // store time zones work on machines without a zoneinfo database

	"github.com/kameng/kameng/app"
)

func main() {
	os.Exit(app.Main(os.Args[1:], frontends))
}
