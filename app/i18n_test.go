package app

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/kameng/kameng/core"
)

var verb = regexp.MustCompile(`%(\[(\d+)\])?([a-zA-Z])`)

// verbs maps argument position → verb letter, following explicit indexes.
func verbs(s string) map[int]string {
	out := map[int]string{}
	pos := 1
	for _, m := range verb.FindAllStringSubmatch(s, -1) {
		if m[2] != "" {
			pos, _ = strconv.Atoi(m[2])
		}
		v := m[3]
		if v == "q" {
			v = "s" // %q and %s take the same argument
		}
		out[pos] = v
		pos++
	}
	return out
}

func TestMessagesHaveBothLanguagesWithTheSameArguments(t *testing.T) {
	for _, key := range MessageKeys() {
		m := messages[key]
		if m[0] == "" || m[1] == "" {
			t.Errorf("%s: missing a language: %q", key, m)
			continue
		}
		zh, en := verbs(m[0]), verbs(m[1])
		if len(zh) != len(en) {
			t.Errorf("%s: zh takes %d arguments, en %d", key, len(zh), len(en))
			continue
		}
		for i, v := range en {
			if zh[i] != v {
				t.Errorf("%s: argument %d is %%%s in en but %%%s in zh", key, i, v, zh[i])
			}
		}
	}
}

func TestEveryReasonAndKindIsTranslated(t *testing.T) {
	for _, r := range core.Reasons {
		if !Has("reason." + r) {
			t.Errorf("reason %s has no text", r)
		}
	}
	for _, k := range core.Kinds {
		if !Has("kind." + string(k)) {
			t.Errorf("kind %s has no text", k)
		}
	}
	for _, c := range []string{core.ErrInvalid, core.ErrNotFound, core.ErrConflict, core.ErrForbidden, core.ErrAuth, core.ErrInternal, core.ErrSchema, core.ErrKey} {
		if !Has("error." + c) {
			t.Errorf("error code %s has no text", c)
		}
	}
}

func TestErrorTextNamesFieldValueAndAcceptedForm(t *testing.T) {
	_, err := core.ParseAmount("amount_off", "12.505")
	zh := Lang("zh").ErrorText(err)
	en := Lang("en").ErrorText(err)
	for _, want := range []string{"减免金额", "12.505", "12.50"} {
		if !regexp.MustCompile(regexp.QuoteMeta(want)).MatchString(zh) {
			t.Errorf("zh error %q lacks %q", zh, want)
		}
	}
	for _, want := range []string{"amount off", "12.505", "accepted"} {
		if !regexp.MustCompile(regexp.QuoteMeta(want)).MatchString(en) {
			t.Errorf("en error %q lacks %q", en, want)
		}
	}
}
