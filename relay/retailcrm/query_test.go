package retailcrm

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	q, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestMakeCallQuery(t *testing.T) {
	m := MakeCall{ClientID: "2dbh26tahjj26sg", Code: "100", Phone: "+79121234567", UserID: "1"}
	if got, want := m.Query().Encode(), "clientId=2dbh26tahjj26sg&code=100&phone=%2B79121234567&userId=1"; got != want {
		t.Errorf("Query = %s, want %s", got, want)
	}
	m.ExternalPhone = "+7-499-999-99-99"
	if got := m.Query().Get("externalPhone"); got != "+7-499-999-99-99" {
		t.Errorf("externalPhone = %q", got)
	}
	back, err := ParseMakeCall(m.Query())
	if err != nil {
		t.Fatal(err)
	}
	if back != m {
		t.Errorf("round trip: %+v", back)
	}
}

func TestParseMakeCall(t *testing.T) {
	// The request from retailCRM's documentation, "+" unescaped as it is there.
	doc := "clientId=2dbh26tahjj26sg&code=100&phone=+79121234567&userId=1"
	got, err := ParseMakeCall(mustQuery(t, doc))
	if err != nil {
		t.Fatal(err)
	}
	want := MakeCall{ClientID: "2dbh26tahjj26sg", Code: "100", Phone: "+79121234567", UserID: "1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	got, err = ParseMakeCall(mustQuery(t, doc+"&externalPhone=+7-499-999-99-99&utm=x"))
	if err != nil {
		t.Fatal(err)
	}
	if got.ExternalPhone != "+7-499-999-99-99" {
		t.Errorf("externalPhone = %q", got.ExternalPhone)
	}

	tests := []struct{ name, query, field string }{
		{"no clientId", "code=100&phone=1&userId=1", "clientId"},
		{"no code", "clientId=a&phone=1&userId=1", "code"},
		{"no phone", "clientId=a&code=100&userId=1", "phone"},
		{"blank phone", "clientId=a&code=100&phone=+&userId=1", "phone"},
		{"no userId", "clientId=a&code=100&phone=1", "userId"},
		{"empty userId", "clientId=a&code=100&phone=1&userId=", "userId"},
		{"two phones", "clientId=a&code=100&phone=1&phone=2&userId=1", "phone"},
		{"bad code", "clientId=a&code=1%3B00&phone=1&userId=1", "code"},
		{"long phone", "clientId=a&code=100&userId=1&phone=" + strings.Repeat("1", 65), "phone"},
		{"control char", "clientId=a&code=100&userId=1&phone=1%0A2", "phone"},
		{"bad utf8", "clientId=%FF&code=100&userId=1&phone=1", "clientId"},
		{"long clientId", "code=100&userId=1&phone=1&clientId=" + strings.Repeat("c", 256), "clientId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMakeCall(mustQuery(t, tt.query))
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Errorf("err = %v, want a validation error on %q", err, tt.field)
			}
		})
	}
}

func TestChangeStatus(t *testing.T) {
	doc := "clientId=2dbh26tahjj26sg&code=100&userId=1&status=busy"
	got, err := ParseChangeStatus(mustQuery(t, doc))
	if err != nil {
		t.Fatal(err)
	}
	want := ChangeStatus{ClientID: "2dbh26tahjj26sg", UserID: "1", Code: "100", Status: StatusBusy}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got, want := want.Query().Encode(), "clientId=2dbh26tahjj26sg&code=100&status=busy&userId=1"; got != want {
		t.Errorf("Query = %s, want %s", got, want)
	}
	for _, s := range []string{StatusFree, StatusBusy, StatusDinner, StatusBreak} {
		if _, err := ParseChangeStatus(mustQuery(t, "clientId=a&code=1&userId=1&status="+s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	tests := []struct{ name, query, field string }{
		{"unknown status", "clientId=a&code=1&userId=1&status=offline", "status"},
		{"status case", "clientId=a&code=1&userId=1&status=Free", "status"},
		{"no status", "clientId=a&code=1&userId=1", "status"},
		{"no clientId", "code=1&userId=1&status=free", "clientId"},
		{"no userId", "clientId=a&code=1&status=free", "userId"},
		{"no code", "clientId=a&userId=1&status=free", "code"},
		{"two statuses", "clientId=a&code=1&userId=1&status=free&status=busy", "status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseChangeStatus(mustQuery(t, tt.query))
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Errorf("err = %v, want a validation error on %q", err, tt.field)
			}
		})
	}
}

func TestClientIDEqual(t *testing.T) {
	if !ClientIDEqual("abc", "abc") || ClientIDEqual("abd", "abc") || ClientIDEqual("", "") || ClientIDEqual("ab", "abc") {
		t.Error("ClientIDEqual is wrong")
	}
}

func TestBuildURL(t *testing.T) {
	q := MakeCall{ClientID: "c", Code: "100", Phone: "+79121234567", UserID: "1"}.Query()
	tests := []struct {
		base, want string
		wantErr    bool
	}{
		{base: "http://api.telephony-test.ru/make-call",
			want: "http://api.telephony-test.ru/make-call?clientId=c&code=100&phone=%2B79121234567&userId=1"},
		{base: "https://pbx.example.com/crm/call?token=s3cret&clientId=old",
			want: "https://pbx.example.com/crm/call?clientId=c&code=100&phone=%2B79121234567&token=s3cret&userId=1"},
		{base: " https://pbx.example.com:8443/x#frag ", want: "https://pbx.example.com:8443/x?clientId=c&code=100&phone=%2B79121234567&userId=1"},
		{base: "https://user:pw@pbx.example.com/x", want: "https://user:pw@pbx.example.com/x?clientId=c&code=100&phone=%2B79121234567&userId=1"},
		{base: "/make-call", wantErr: true},
		{base: "ftp://pbx.example.com/x", wantErr: true},
		{base: "https://pbx.example.com/x?a=%zz", wantErr: true},
		{base: "https://pbx .example.com/x?token=s3cret", wantErr: true},
	}
	for _, tt := range tests {
		got, err := BuildURL(tt.base, q)
		if (err != nil) != tt.wantErr {
			t.Errorf("BuildURL(%q) err = %v, wantErr %v", tt.base, err, tt.wantErr)
			continue
		}
		if err != nil {
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error leaks the URL: %v", err)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("BuildURL(%q) =\n%s\nwant\n%s", tt.base, got, tt.want)
		}
	}
}
