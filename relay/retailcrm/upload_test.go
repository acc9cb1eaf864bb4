package retailcrm

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func uploadForm(calls string) url.Values { return url.Values{"calls": {calls}} }

func TestParseCallsUploadFixture(t *testing.T) {
	msk := time.FixedZone("MSK", 3*3600)
	got, err := ParseCallsUpload(formPost(PathCallsUpload, uploadForm(string(fixture(t, "calls_upload.json")))), 0, msk)
	if err != nil {
		t.Fatal(err)
	}
	want := []UploadCall{
		{
			Date: time.Date(2024, 3, 1, 9, 15, 0, 0, msk), Type: TypeIn, Phone: "+79121234567", Code: "100", UserID: "1",
			Result: ResultAnswered, Duration: 125, DurationWaiting: 7, ExternalID: "call-0001",
			RecordURL: "https://pbx.example.com/records/call-0001.mp3", ExternalPhone: "+7-499-999-99-99", Site: "shop1",
		},
		{
			Date: time.Date(2024, 3, 1, 9, 20, 31, 0, msk), Type: TypeOut, Phone: "84951234567", Code: "101",
			Result: ResultNoAnswer, DurationWaiting: 30, ExternalID: "2",
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	if !got[0].Date.Equal(time.Date(2024, 3, 1, 6, 15, 0, 0, time.UTC)) {
		t.Errorf("date not read in the given zone: %v", got[0].Date)
	}
}

func TestParseCallsUploadRefusals(t *testing.T) {
	ok := `{"date":"2024-03-01 09:15:00","type":"in","phone":"1"}`
	many := "[" + strings.TrimSuffix(strings.Repeat(ok+",", 51), ",") + "]"
	tests := []struct {
		name, calls, field string
	}{
		{"not json", `[{`, "calls"},
		{"object", ok, "calls"},
		{"empty", `[]`, "calls"},
		{"too many", many, "calls"},
		{"element not object", `[` + ok + `, 5]`, "calls[1]"},
		{"no date", `[{"type":"in","phone":"1"}]`, "calls[0].date"},
		{"bad date", `[{"date":"01.03.2024 09:15","type":"in","phone":"1"}]`, "calls[0].date"},
		{"date with zone", `[{"date":"2024-03-01T09:15:00Z","type":"in","phone":"1"}]`, "calls[0].date"},
		{"hangup type", `[{"date":"2024-03-01 09:15:00","type":"hangup","phone":"1"}]`, "calls[0].type"},
		{"no phone", `[{"date":"2024-03-01 09:15:00","type":"in"}]`, "calls[0].phone"},
		{"bad result", `[` + ok + `,{"date":"2024-03-01 09:15:00","type":"in","phone":"1","result":"no answered"}]`, "calls[1].result"},
		{"negative duration", `[{"date":"2024-03-01 09:15:00","type":"in","phone":"1","duration":-1}]`, "calls[0].duration"},
		{"fractional duration", `[{"date":"2024-03-01 09:15:00","type":"in","phone":"1","duration":1.5}]`, "calls[0].duration"},
		{"word duration", `[{"date":"2024-03-01 09:15:00","type":"in","phone":"1","durationWaiting":"ten"}]`, "calls[0].durationWaiting"},
		{"huge duration", `[{"date":"2024-03-01 09:15:00","type":"in","phone":"1","duration":99999999999999999999}]`, "calls[0].duration"},
		{"relative record url", `[{"date":"2024-03-01 09:15:00","type":"in","phone":"1","recordUrl":"/rec/1.mp3"}]`, "calls[0].recordUrl"},
		{"ftp record url", `[{"date":"2024-03-01 09:15:00","type":"in","phone":"1","recordUrl":"ftp://x/1.mp3"}]`, "calls[0].recordUrl"},
		{"bad code", `[{"date":"2024-03-01 09:15:00","type":"in","phone":"1","code":"10 0"}]`, "calls[0].code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCallsUpload(formPost(PathCallsUpload, uploadForm(tt.calls)), 0, nil)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want *ValidationError", err)
			}
			if ve.Field != tt.field {
				t.Errorf("field = %q (%v), want %q", ve.Field, err, tt.field)
			}
		})
	}
	_, err := ParseCallsUpload(formPost(PathCallsUpload, url.Values{"call": {"[]"}}), 0, nil)
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Field != "calls" {
		t.Errorf("missing calls: %v", err)
	}
}

func TestEncodeCallsUpload(t *testing.T) {
	msk := time.FixedZone("MSK", 3*3600)
	calls := []UploadCall{
		{Date: time.Date(2024, 3, 1, 9, 15, 0, 0, msk), Type: TypeIn, Phone: "+79121234567", Code: "100", UserID: "1",
			Result: ResultAnswered, Duration: 125, DurationWaiting: 7, ExternalID: "call-1",
			RecordURL: "https://pbx.example.com/r/1.mp3", Site: "shop1"},
		{Date: time.Date(2024, 3, 1, 9, 20, 0, 0, msk), Type: TypeOut, Phone: "+79121234567", Result: ResultNoAnswer},
		{Date: time.Date(2024, 3, 1, 9, 25, 0, 0, msk), Type: TypeIn, Phone: "+79121234567", ExternalID: "call-3",
			Source:   &Source{Source: "yandex", Medium: "cpc", Campaign: "весна/2024", Keyword: "пульт", Content: "ad-1"},
			ClientID: "GA1.2.1234.5678"},
		{Date: time.Date(2024, 3, 1, 9, 30, 0, 0, msk), Type: TypeIn, Phone: "+79121234567", ExternalID: "call-4",
			Source: &Source{Medium: "organic"}},
	}
	form, err := EncodeCallsUpload(calls)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"date":"2024-03-01 09:15:00","type":"in","phone":"+79121234567","code":"100","userId":1,"result":"answered","duration":125,"durationWaiting":7,"externalId":"call-1","recordUrl":"https://pbx.example.com/r/1.mp3","site":"shop1"},` +
		`{"date":"2024-03-01 09:20:00","type":"out","phone":"+79121234567","result":"no answer","duration":0,"durationWaiting":0},` +
		`{"date":"2024-03-01 09:25:00","type":"in","phone":"+79121234567","duration":0,"durationWaiting":0,"externalId":"call-3","source":{"source":"yandex","medium":"cpc","campaign":"весна/2024","keyword":"пульт","content":"ad-1"},"clientId":"GA1.2.1234.5678"},` +
		`{"date":"2024-03-01 09:30:00","type":"in","phone":"+79121234567","duration":0,"durationWaiting":0,"externalId":"call-4","source":{"medium":"organic"}}]`
	if got := form.Get("calls"); got != want {
		t.Errorf("calls =\n%s\nwant\n%s", got, want)
	}
	back, err := ParseCallsUpload(formPost(PathCallsUpload, form), 0, msk)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(calls, back); diff != "" {
		t.Errorf("round trip (-sent +parsed)\n%s", diff)
	}

	if _, err := EncodeCallsUpload(nil); err == nil {
		t.Error("empty upload encoded")
	}
	many := make([]UploadCall, MaxUploadCalls+1)
	for i := range many {
		many[i] = calls[0]
	}
	if _, err := EncodeCallsUpload(many); err == nil {
		t.Error("51 calls encoded")
	}
	if _, err := EncodeCallsUpload(many[:MaxUploadCalls]); err != nil {
		t.Errorf("50 calls: %v", err)
	}
	bad := []UploadCall{calls[0], calls[1], {Type: TypeIn, Phone: "1"}}
	_, err = EncodeCallsUpload(bad)
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Field != "calls[2].date" {
		t.Errorf("missing date: %v", err)
	}
	for i, c := range []UploadCall{
		{Date: calls[0].Date, Type: TypeIn, Phone: "1", Duration: -1},
		{Date: calls[0].Date, Type: TypeIn, Phone: "1", Result: "ok"},
		{Date: calls[0].Date, Type: "in ", Phone: "1"},
	} {
		if _, err := EncodeCallsUpload([]UploadCall{c}); err == nil {
			t.Errorf("case %d: invalid call encoded", i)
		} else if c.Validate() == nil {
			t.Errorf("case %d: Validate accepts what Encode refuses", i)
		}
	}
}
