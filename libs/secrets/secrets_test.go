package secrets_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accessbus/accessbus/libs/secrets"
)

func mustKey(t *testing.T) secrets.Key {
	t.Helper()
	k, err := secrets.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := mustKey(t)
	aad := []byte("c1/1")
	a, err := secrets.Seal(k, []byte("00token"), aad)
	if err != nil {
		t.Fatal(err)
	}
	b, err := secrets.Seal(k, []byte("00token"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		t.Fatal("two seals of one value are equal: the nonce is not random")
	}
	if bytes.Contains(a, []byte("00token")) {
		t.Fatal("sealed value holds the plaintext")
	}
	for _, s := range [][]byte{a, b} {
		got, err := secrets.Open(k, s, aad)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "00token" {
			t.Fatalf("Open = %q", got)
		}
	}
}

func TestOpenFailures(t *testing.T) {
	k := mustKey(t)
	other := mustKey(t)
	sealed, err := secrets.Seal(k, []byte("00token"), []byte("c1/1"))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		c := bytes.Clone(sealed)
		c[i] ^= 1
		return c
	}
	cases := []struct {
		name     string
		key      secrets.Key
		sealed   []byte
		aad      string
		wrongKey bool
	}{
		{"wrong key", other, sealed, "c1/1", true},
		{"other owner", k, sealed, "c2/1", false},
		{"other version", k, sealed, "c1/2", false},
		{"tampered ciphertext", k, flip(len(sealed) - 20), "c1/1", false},
		{"tampered tag", k, flip(len(sealed) - 1), "c1/1", false},
		{"tampered nonce", k, flip(10), "c1/1", false},
		{"tampered key id", k, flip(1), "c1/1", true},
		{"unknown format", k, flip(0), "c1/1", false},
		{"truncated", k, sealed[:20], "c1/1", false},
		{"empty", k, nil, "c1/1", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := secrets.Open(tc.key, tc.sealed, []byte(tc.aad))
			if !errors.Is(err, secrets.ErrDecrypt) {
				t.Fatalf("err = %v, want ErrDecrypt", err)
			}
			if got := errors.Is(err, secrets.ErrWrongKey); got != tc.wrongKey {
				t.Fatalf("errors.Is(ErrWrongKey) = %v, want %v (%v)", got, tc.wrongKey, err)
			}
			if tc.wrongKey && !strings.Contains(err.Error(), "sealed with another key") {
				t.Fatalf("wrong-key error does not say so: %v", err)
			}
		})
	}
}

func TestZeroKeyRefused(t *testing.T) {
	var zero secrets.Key
	if _, err := secrets.Seal(zero, []byte("x"), nil); !errors.Is(err, secrets.ErrInvalidKey) {
		t.Fatalf("Seal with zero key: %v", err)
	}
	if _, err := secrets.Open(zero, make([]byte, 64), nil); !errors.Is(err, secrets.ErrInvalidKey) {
		t.Fatalf("Open with zero key: %v", err)
	}
}

func TestParseKey(t *testing.T) {
	k := mustKey(t)
	raw, _ := base64.StdEncoding.DecodeString(k.Encode())
	for name, s := range map[string]string{
		"std":        base64.StdEncoding.EncodeToString(raw),
		"raw std":    base64.RawStdEncoding.EncodeToString(raw),
		"url":        base64.URLEncoding.EncodeToString(raw),
		"raw url":    base64.RawURLEncoding.EncodeToString(raw),
		"whitespace": "  " + k.Encode() + "\n",
	} {
		got, err := secrets.ParseKey(s)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !got.Equal(k) {
			t.Fatalf("%s: parsed another key", name)
		}
	}
	short := base64.StdEncoding.EncodeToString(raw[:16])
	for name, s := range map[string]string{
		"empty":      "",
		"not base64": "not base64 at all!",
		"short":      short,
		"zero":       base64.StdEncoding.EncodeToString(make([]byte, 32)),
	} {
		_, err := secrets.ParseKey(s)
		if !errors.Is(err, secrets.ErrInvalidKey) {
			t.Fatalf("%s: err = %v, want ErrInvalidKey", name, err)
		}
		if !strings.Contains(err.Error(), "openssl rand -base64 32") {
			t.Fatalf("%s: error does not say how to create a key: %v", name, err)
		}
		if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("%s: error echoes the value: %v", name, err)
		}
	}
}

func TestKeyNeverPrints(t *testing.T) {
	k := mustKey(t)
	raw, _ := base64.StdEncoding.DecodeString(k.Encode())
	secretForms := []string{k.Encode(), base64.RawStdEncoding.EncodeToString(raw), fmt.Sprintf("%x", raw), fmt.Sprint(raw)[1:40]}
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("m", "key", k)
	js, _ := json.Marshal(struct{ K secrets.Key }{k})
	outs := []string{
		fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %x %q %d", k, k, k, k, k, k, k),
		fmt.Sprintf("%+v", struct{ k secrets.Key }{k}), logBuf.String(), string(js),
	}
	for _, out := range outs {
		for _, f := range secretForms {
			if strings.Contains(out, f) {
				t.Fatalf("key printed: %s", out)
			}
		}
		if !strings.Contains(out, k.ID()) && !strings.Contains(out, "0x") {
			t.Fatalf("output does not name the key id: %s", out)
		}
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "secrets.key")
	k1, err := secrets.LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}
	k2, err := secrets.LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Fatal("second load returned another key")
	}

	bad := filepath.Join(t.TempDir(), "bad.key")
	if err := os.WriteFile(bad, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.LoadOrCreateKeyFile(bad); !errors.Is(err, secrets.ErrInvalidKey) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("bad key file: %v", err)
	}
	// A directory where the file should be cannot be read or created.
	dir := t.TempDir()
	if _, err := secrets.LoadOrCreateKeyFile(dir); err == nil {
		t.Fatal("a directory was accepted as a key file")
	}
}

func TestEnvDecode(t *testing.T) {
	k := mustKey(t)
	var got secrets.Key
	if err := got.EnvDecode(k.Encode()); err != nil || !got.Equal(k) {
		t.Fatalf("EnvDecode: %v", err)
	}
	if err := got.EnvDecode("nope"); !errors.Is(err, secrets.ErrInvalidKey) || !strings.Contains(err.Error(), secrets.EnvKey) {
		t.Fatalf("EnvDecode(bad): %v", err)
	}
	if err := got.EnvDecode(" "); err != nil || !got.IsZero() {
		t.Fatalf("EnvDecode(empty): %v, zero %v", err, got.IsZero())
	}
	if !got.Equal(secrets.Key{}) || got.Equal(k) || k.Encode() == "" || got.Encode() != "" {
		t.Fatal("Equal/Encode of the zero key")
	}
}
