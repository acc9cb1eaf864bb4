// Package phone turns telephone numbers written any human way into E.164 and
// back into the national format people read. The relay and the agent share it
// so an operator sees the number exactly as the relay will dial it.
package phone

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"

	"github.com/nyaruka/phonenumbers"
)

// DefaultRegion is used for numbers written without a country code.
const DefaultRegion = "RU"

// MaxInput bounds what is parsed: nothing human is longer.
const MaxInput = 64

// ErrNotANumber is wrapped by every parse failure.
var ErrNotANumber = errors.New("not a phone number")

// Number is a parsed telephone number. Its international form, which
// only the dialer shows, is made on demand (International): a format
// costs about as much as a sixth of a parse, on the relay's way from a
// PBX's webhook to the card, which needs the other two.
type Number struct {
	E164     string // +79121234567
	National string // 8 (912) 123-45-67
}

// International is the number as written abroad: +7 912 123-45-67.
func (n Number) International() string {
	pn, err := phonenumbers.Parse(n.E164, DefaultRegion)
	if err != nil {
		return n.E164
	}
	return phonenumbers.Format(pn, phonenumbers.INTERNATIONAL)
}

// Parse reads s written any human way ("+7 (912) 123-45-67", "89121234567",
// "912 123 45 67") with region as the default country (ISO code, "RU" when
// empty). It refuses what is not a possible number.
func Parse(s, region string) (Number, error) {
	if region == "" {
		region = DefaultRegion
	}
	raw := strings.TrimSpace(s)
	if raw == "" {
		return Number{}, fmt.Errorf("%w: empty", ErrNotANumber)
	}
	if len(raw) > MaxInput {
		return Number{}, fmt.Errorf("%w: longer than %d characters", ErrNotANumber, MaxInput)
	}
	digits := 0
	for _, r := range raw {
		switch {
		case unicode.IsDigit(r):
			digits++
		case r == '+' || r == '(' || r == ')' || r == '-' || r == '.' || r == ' ' || r == '\u00a0':
		default:
			return Number{}, fmt.Errorf("%w: %q contains %q", ErrNotANumber, raw, r)
		}
	}
	if digits < 3 {
		return Number{}, fmt.Errorf("%w: %q has too few digits", ErrNotANumber, raw)
	}
	region = strings.ToUpper(region)
	key := cacheKey{raw, region}
	if n, ok := recent.get(key); ok {
		return n, nil
	}
	n, ok := canonical(raw)
	if !ok {
		var err error
		if n, err = phonenumbers.Parse(raw, region); err != nil {
			return Number{}, fmt.Errorf("%w: %q: %v", ErrNotANumber, raw, err)
		}
	}
	if !phonenumbers.IsPossibleNumber(n) {
		return Number{}, fmt.Errorf("%w: %q is not a possible number", ErrNotANumber, raw)
	}
	num := Number{
		E164:     phonenumbers.Format(n, phonenumbers.E164),
		National: phonenumbers.Format(n, phonenumbers.NATIONAL),
	}
	recent.put(key, num)
	return num, nil
}

// canonical reads a number written as E.164 under calling code 7 (Russia
// and Kazakhstan): "+7" and ten digits, the first not 0, as a PBX sends a
// caller. The library's parse of such a string is always calling code 7
// and those ten digits (no extension, carrier code or national prefix can
// be in it, and no leading zero to keep), but its regular expressions
// look for them and cost most of the relay's way from a webhook to the
// card (BENCHMARKS.md, "Session 12"); the library still decides whether
// the number is possible and formats it. TestCanonicalAsTheLibrary holds
// it to the library's parse for every three-digit start.
func canonical(raw string) (*phonenumbers.PhoneNumber, bool) {
	if len(raw) != 12 || raw[0] != '+' || raw[1] != '7' || raw[2] == '0' {
		return nil, false
	}
	var nsn uint64
	for i := 2; i < len(raw); i++ {
		c := raw[i]
		if c < '0' || c > '9' {
			return nil, false
		}
		nsn = nsn*10 + uint64(c-'0')
	}
	cc := int32(7)
	return &phonenumbers.PhoneNumber{CountryCode: &cc, NationalNumber: &nsn}, true
}

// recent keeps the numbers parsed lately: every event of a call carries
// its number, and callers call again (a parse takes tens of microseconds,
// a look-up well under one).
var recent = cache{m: make(map[cacheKey]Number)}

// maxRecent bounds the numbers kept; past it the cache starts afresh.
const maxRecent = 4096

type cacheKey struct{ raw, region string }

type cache struct {
	mu sync.Mutex
	m  map[cacheKey]Number
}

func (c *cache) get(k cacheKey) (Number, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.m[k]
	return n, ok
}

func (c *cache) put(k cacheKey, n Number) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxRecent {
		clear(c.m)
	}
	c.m[k] = n
}

// Display formats s for people: national format when it parses in region,
// otherwise s as given (a PBX may send internal or hidden numbers).
func Display(s, region string) string {
	n, err := Parse(s, region)
	if err != nil {
		return strings.TrimSpace(s)
	}
	return n.National
}

// Normalize is s in E.164 when it parses in region, otherwise s as given
// (a PBX may send internal or hidden numbers); "" stays "".
func Normalize(s, region string) string {
	if s == "" {
		return ""
	}
	if n, err := Parse(s, region); err == nil {
		return n.E164
	}
	return s
}

// Digits returns the 11-digit form some partners want (79121234567) for a
// Russian-style number, from E.164.
func Digits(e164 string) string { return strings.TrimPrefix(e164, "+") }
