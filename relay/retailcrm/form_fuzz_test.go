package retailcrm

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The form parsers a PBX's request goes through before anything else:
// multipart (api-client-php v5 hands curl an array) and urlencoded (the
// other clients). Whatever the bytes, ReadForm must not panic, must refuse
// with a *ValidationError, must read no more than its bound, must leave the
// body re-readable as it came, and the decoders must only ever refuse what
// it accepted with a *ValidationError.

// A PHP v5 call event as curl lays out the multipart body of a PHP array.
const phpMultipartSeed = "--------------------------d74496d66958873e\r\n" +
	"Content-Disposition: form-data; name=\"apiKey\"\r\n\r\n" +
	"pbx-key\r\n" +
	"--------------------------d74496d66958873e\r\n" +
	"Content-Disposition: form-data; name=\"event\"\r\n\r\n" +
	`{"phone":"+79121234567","type":"in","codes":["100"],"hangupStatus":null,"callExternalId":"c1","externalPhone":null,"webAnalyticsData":[],"site":"shop1"}` + "\r\n" +
	"--------------------------d74496d66958873e--\r\n"

func FuzzReadFormMultipart(f *testing.F) {
	f.Add("------------------------d74496d66958873e", []byte(phpMultipartSeed))
	f.Add("xYzZY", []byte("--xYzZY\r\nContent-Disposition: form-data; name=\"calls\"\r\n\r\n[]\r\n--xYzZY--\r\n"))
	f.Add("b", []byte("--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\nbody\r\n--b--"))
	f.Fuzz(func(t *testing.T, boundary string, body []byte) {
		checkReadForm(t, "multipart/form-data; boundary=\""+boundary+"\"", body)
	})
}

func FuzzReadFormURLEncoded(f *testing.F) {
	f.Add([]byte(`apiKey=k&event=%7B%22phone%22%3A%22%2B79121234567%22%2C%22type%22%3A%22in%22%2C%22userIds%22%3A%5B27%5D%7D`))
	f.Add([]byte(`calls=%5B%7B%22date%22%3A%222026-12-02+10%3A00%3A00%22%2C%22type%22%3A%22in%22%2C%22phone%22%3A%221%22%2C%22source%22%3A%7B%22source%22%3A%22google%22%7D%7D%5D`))
	f.Add([]byte("event=%zz&&=;"))
	f.Fuzz(func(t *testing.T, body []byte) {
		checkReadForm(t, "application/x-www-form-urlencoded", body)
	})
}

const fuzzMaxBody = 4 << 10

func checkReadForm(t *testing.T, contentType string, body []byte) {
	r := httptest.NewRequest(http.MethodPost, PathCallEvent, bytes.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	form, err := ReadForm(r, fuzzMaxBody)
	if err != nil {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("error is %T, not *ValidationError: %v", err, err)
		}
		if len(body) > fuzzMaxBody && !errors.Is(err, ErrBodyTooLarge) {
			t.Fatalf("an oversized body refused for another reason: %v", err)
		}
		return
	}
	if len(body) > fuzzMaxBody {
		t.Fatalf("accepted %d bytes over a bound of %d", len(body), fuzzMaxBody)
	}
	n := 0
	for k, vs := range form {
		n += len(k)
		for _, v := range vs {
			n += len(v)
		}
	}
	if n > len(body) {
		t.Fatalf("the form holds %d bytes, more than the body's %d", n, len(body))
	}
	again, _ := io.ReadAll(r.Body)
	if !bytes.Equal(again, body) {
		t.Fatalf("the body is not re-readable as it came")
	}
	_ = APIKeyFrom(r)
	if _, err := DecodeCallEvent(form); err != nil {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("DecodeCallEvent: %T %v", err, err)
		}
	}
	if _, err := DecodeCallsUpload(form, time.UTC); err != nil {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("DecodeCallsUpload: %T %v", err, err)
		}
	}
}
