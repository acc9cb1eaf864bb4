package phone

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct{ in, e164, national, intl string }{
		{"+7 (912) 123-45-67", "+79121234567", "8 (912) 123-45-67", "+7 912 123-45-67"},
		{"89121234567", "+79121234567", "8 (912) 123-45-67", "+7 912 123-45-67"},
		{"9121234567", "+79121234567", "8 (912) 123-45-67", "+7 912 123-45-67"},
		{"+7-499-999-99-99", "+74999999999", "8 (499) 999-99-99", "+7 499 999-99-99"},
		{"8 800 555 35 35", "+78005553535", "8 (800) 555-35-35", "+7 800 555-35-35"},
		{"+36 1 234 5678", "+3612345678", "(06 1) 234 5678", "+36 1 234 5678"},
	} {
		n, err := Parse(tc.in, "")
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if n.E164 != tc.e164 || n.National != tc.national || n.International() != tc.intl {
			t.Errorf("Parse(%q) = %q, %q, %q; want %q, %q, %q", tc.in, n.E164, n.National, n.International(), tc.e164, tc.national, tc.intl)
		}
		// Again, from the cache of recent numbers; in another region, not.
		if again, _ := Parse(tc.in, "ru"); again != n {
			t.Errorf("Parse(%q) again = %+v, first %+v", tc.in, again, n)
		}
		if other, err := Parse(tc.in, "US"); err == nil && other.E164 == n.E164 && !strings.HasPrefix(tc.in, "+") {
			t.Errorf("Parse(%q, US) = %+v: the region is part of the cache's key", tc.in, other)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, in := range []string{"", "  ", "hello", "12", "+7 912 abc", "1234567890123456789012345678901234567890123456789012345678901234567890", "+7 (912) 123-45-67; DROP"} {
		if _, err := Parse(in, "RU"); !errors.Is(err, ErrNotANumber) {
			t.Errorf("Parse(%q) err = %v, want ErrNotANumber", in, err)
		}
	}
}

func TestDisplayKeepsUnparsable(t *testing.T) {
	if got := Display("anonymous", "RU"); got != "anonymous" {
		t.Errorf("Display = %q", got)
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"8 (912) 123-45-67": "+79121234567",
		"+7 912 123 45 67":  "+79121234567",
		"101":               "101", // an extension: as given
		"anonymous":         "anonymous",
		"":                  "",
	} {
		if got := Normalize(in, "RU"); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

// A number written as "+7" and ten digits is read without the library's
// text parse (canonical): for every three-digit start of the ten digits,
// with random rest, Parse gives what the library's parse gives, and
// refuses what it refuses. Any other form is left to the library.
func TestCanonicalAsTheLibrary(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 12))
	for start := 100; start <= 999; start++ {
		for range 3 {
			raw := fmt.Sprintf("+7%03d%07d", start, r.IntN(10_000_000))
			if _, ok := canonical(raw); !ok {
				t.Fatalf("canonical(%q) not taken", raw)
			}
			var want Number
			pn, err := phonenumbers.Parse(raw, "RU")
			possible := err == nil && phonenumbers.IsPossibleNumber(pn)
			if possible {
				want = Number{E164: phonenumbers.Format(pn, phonenumbers.E164), National: phonenumbers.Format(pn, phonenumbers.NATIONAL)}
			}
			recent.mu.Lock()
			clear(recent.m)
			recent.mu.Unlock()
			got, gotErr := Parse(raw, "RU")
			if (gotErr == nil) != possible || got != want {
				t.Errorf("Parse(%q) = %+v, %v; the library: %+v, possible %v (%v)", raw, got, gotErr, want, possible, err)
			}
			if possible && got.International() != phonenumbers.Format(pn, phonenumbers.INTERNATIONAL) {
				t.Errorf("Parse(%q).International() = %q", raw, got.International())
			}
		}
	}
	for _, raw := range []string{"+70123456789", "+7912123456", "+791212345678", "79121234567", "+7 9121234567", "+7912123456x", "+19121234567"} {
		if _, ok := canonical(raw); ok {
			t.Errorf("canonical(%q) taken: not \"+7\" and ten digits, the first not 0", raw)
		}
	}
}

// BenchmarkParse is a number's first parse and a repeated one (every event
// of a call carries its number).
func BenchmarkParse(b *testing.B) {
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			recent.mu.Lock()
			clear(recent.m)
			recent.mu.Unlock()
			Parse("+79161234567", "RU")
		}
	})
	b.Run("again", func(b *testing.B) {
		for b.Loop() {
			Parse("+79161234567", "RU")
		}
	})
}
