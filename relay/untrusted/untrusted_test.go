package untrusted

import "testing"

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"  Иван \t Петров\n":   "Иван Петров",
		"a\x00b\u200bc":        "ab\u200bc",
		"bad \xff byte":        "bad \uFFFD byte",
		"":                     "",
		"line one\r\nline two": "line one line two",
	} {
		if got := OneLine(in); got != want {
			t.Errorf("OneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClip(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"Петров", 10, "Петров"},
		{"Петров", 6, "Петров"},
		{"Петров Иван", 7, "Петров"},
		{"abc", 0, ""},
	} {
		if got := Clip(c.in, c.max); got != c.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exact", 5, "exact"},
		{"abcdef", 3, "abc…"},
		{"жжж", 3, "ж…"}, // 3 bytes would split the second ж
	} {
		if got := Truncate(c.in, c.n); got != c.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func TestJSONKind(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":1}`: "an object", ` [1]`: "an array", `"s"`: "a string", `true`: "a boolean",
		`false`: "a boolean", `null`: "null", `12.5`: "a number", ` `: "nothing", ``: "nothing",
	} {
		if got := JSONKind([]byte(in)); got != want {
			t.Errorf("JSONKind(%q) = %q, want %q", in, got, want)
		}
	}
}
