package calltouch

import (
	"testing"
	"time"
)

func TestEndpoint(t *testing.T) {
	for base, want := range map[string]string{
		"":                          "https://api.calltouch.ru/widget-service/v1/api/widget-request/user-form/create",
		"https://api.calltouch.ru/": "https://api.calltouch.ru/widget-service/v1/api/widget-request/user-form/create",
		"http://127.0.0.1:8080/ct":  "http://127.0.0.1:8080/ct/widget-service/v1/api/widget-request/user-form/create",
	} {
		got, err := (&Client{BaseURL: base}).endpoint()
		if err != nil || got != want {
			t.Errorf("%q: %q %v", base, got, err)
		}
	}
	for _, base := range []string{"api.calltouch.ru", "ftp://x", "https://u:p@api.calltouch.ru", "https://api.calltouch.ru/?a=1"} {
		if _, err := (&Client{BaseURL: base}).endpoint(); err == nil {
			t.Errorf("%q accepted", base)
		}
	}
}

func TestMoscow(t *testing.T) {
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).In(Moscow)
	if _, off := at.Zone(); off != 3*3600 {
		t.Errorf("Moscow offset %d", off)
	}
}
