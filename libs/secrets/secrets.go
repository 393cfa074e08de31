// Package secrets seals secrets at rest (Okta API tokens) with AES-256-GCM.
//
// A sealed value names the key it was sealed with (a short key id) and is
// bound to its owner by associated data, such as a connector id and the
// secret's version: opening it with another key says so, and a sealed value
// copied to another owner does not open at all.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// EnvKey is the environment variable that holds the secrets key, base64
// encoded; every service that decrypts tokens reads it.
const EnvKey = "ACCESSBUS_SECRETS_KEY"

// KeySize is the size of a key in bytes (AES-256).
const KeySize = 32

// HowToCreate tells a person how to make a key; errors about keys end with it.
const HowToCreate = "create one with `openssl rand -base64 32`"

const (
	// formatV1 is the first byte of every sealed value: the layout below.
	formatV1 = 1
	// keyIDSize is how many bytes of the key's SHA-256 name it in a sealed value.
	keyIDSize = 8
	nonceSize = 12
	// headerSize is version | key id | nonce.
	headerSize = 1 + keyIDSize + nonceSize
)

// Key is an AES-256 key. Its zero value is "no key". It never prints its
// bytes: fmt, slog and JSON see only its id.
//
// The bytes sit behind a pointer so that reflection-based printing (fmt on a
// Key in an unexported struct field, where its methods cannot be called)
// shows an address, not the key. == compares identity; use Equal.
type Key struct {
	b *[KeySize]byte
}

// keyOf wraps b, which must not be all zero.
func keyOf(b []byte) Key {
	var a [KeySize]byte
	copy(a[:], b)
	return Key{b: &a}
}

// ParseKey decodes a key from base64 (standard or URL alphabet, with or
// without padding), as `openssl rand -base64 32` prints it. The error never
// holds the value.
func ParseKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Key{}, fmt.Errorf("%w: the key is empty: %s", ErrInvalidKey, HowToCreate)
	}
	var b []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return Key{}, fmt.Errorf("%w: the key is not base64: %s", ErrInvalidKey, HowToCreate)
	}
	if len(b) != KeySize {
		return Key{}, fmt.Errorf("%w: the key decodes to %d bytes, want %d: %s", ErrInvalidKey, len(b), KeySize, HowToCreate)
	}
	if subtle.ConstantTimeCompare(b, make([]byte, KeySize)) == 1 {
		return Key{}, fmt.Errorf("%w: the key is all zero bytes: %s", ErrInvalidKey, HowToCreate)
	}
	return keyOf(b), nil
}

// NewKey returns a new random key.
func NewKey() (Key, error) {
	var b [KeySize]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		return Key{}, fmt.Errorf("generate a secrets key: %w", err)
	}
	return Key{b: &b}, nil
}

// LoadOrCreateKeyFile reads the base64 key in path, or, when the file does
// not exist, creates it (mode 0600, its directory 0700) with a new random
// key. It is meant for `accessbus dev`, whose data dir keeps the key between
// runs; deployments set EnvKey instead.
func LoadOrCreateKeyFile(path string) (Key, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := ParseKey(string(b))
		if err != nil {
			return Key{}, fmt.Errorf("read secrets key file %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Key{}, fmt.Errorf("read secrets key file %s: %w", path, err)
	}
	k, err := NewKey()
	if err != nil {
		return Key{}, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return Key{}, fmt.Errorf("create secrets key file %s: %w", path, err)
	}
	// O_EXCL: if another process created the file since we looked, its key
	// wins and we read it instead of overwriting a key already in use.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadOrCreateKeyFile(path)
	}
	if err != nil {
		return Key{}, fmt.Errorf("create secrets key file %s: %w", path, err)
	}
	_, werr := f.WriteString(k.Encode() + "\n")
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(path)
		return Key{}, fmt.Errorf("write secrets key file %s: %w", path, err)
	}
	return k, nil
}

// IsZero reports whether k is the zero value (no key).
func (k Key) IsZero() bool { return k.b == nil }

// Equal reports whether k and o are the same key.
func (k Key) Equal(o Key) bool {
	if k.b == nil || o.b == nil {
		return k.b == o.b
	}
	return subtle.ConstantTimeCompare(k.b[:], o.b[:]) == 1
}

// Encode returns the key in standard base64, the form ParseKey reads, or ""
// for no key. Call it only to store the key (a key file, a Kubernetes secret).
func (k Key) Encode() string {
	if k.b == nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(k.b[:])
}

// ID returns the key id: the first 8 bytes of the key's SHA-256 in hex. It
// tells keys apart without revealing them.
func (k Key) ID() string {
	id := k.id()
	return hex.EncodeToString(id[:])
}

func (k Key) id() [keyIDSize]byte {
	var sum [sha256.Size]byte
	if k.b != nil {
		sum = sha256.Sum256(k.b[:])
	}
	var id [keyIDSize]byte
	copy(id[:], sum[:])
	return id
}

// String returns a placeholder with the key id, never the key.
func (k Key) String() string {
	if k.IsZero() {
		return "secrets.Key[NOT SET]"
	}
	return "secrets.Key[" + k.ID() + "]"
}

// GoString is String, so that %#v does not print the bytes.
func (k Key) GoString() string { return k.String() }

// Format prints String for every verb, so that %x or %v never print the bytes.
func (k Key) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// LogValue implements slog.LogValuer with String.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalJSON writes String as a JSON string, so a config dump does not leak.
func (k Key) MarshalJSON() ([]byte, error) { return fmt.Appendf(nil, "%q", k.String()), nil }

// EnvDecode lets github.com/sethvargo/go-envconfig fill a Key field from
// the environment with ParseKey. Its error names EnvKey, the variable such
// fields are read from, since envconfig does not name it for this type.
// An empty value leaves the key unset, like an unset variable: whoever needs
// the key says so when it is missing.
func (k *Key) EnvDecode(val string) error {
	if strings.TrimSpace(val) == "" {
		*k = Key{}
		return nil
	}
	parsed, err := ParseKey(val)
	if err != nil {
		return fmt.Errorf("%s: %w", EnvKey, err)
	}
	*k = parsed
	return nil
}

func (k Key) aead() (cipher.AEAD, error) {
	if k.IsZero() {
		return nil, fmt.Errorf("%w: no key: set %s (%s)", ErrInvalidKey, EnvKey, HowToCreate)
	}
	block, err := aes.NewCipher(k.b[:])
	if err != nil {
		return nil, fmt.Errorf("set up AES: %w", err)
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("set up AES-GCM: %w", err)
	}
	return g, nil
}

// additional is what GCM authenticates besides the ciphertext: the header
// (so the version and key id cannot be altered) and the caller's aad.
func additional(header, aad []byte) []byte {
	out := make([]byte, 0, len(header)+len(aad))
	return append(append(out, header...), aad...)
}

// Seal encrypts plaintext with key, bound to aad (for example the owner's id
// and the secret's version): Open must be given the same aad. Every call uses
// a new random nonce, so sealing the same value twice gives different output.
func Seal(key Key, plaintext, aad []byte) ([]byte, error) {
	g, err := key.aead()
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	out := make([]byte, headerSize, headerSize+len(plaintext)+g.Overhead())
	out[0] = formatV1
	id := key.id()
	copy(out[1:], id[:])
	nonce := out[1+keyIDSize : headerSize]
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return nil, fmt.Errorf("seal: read a nonce: %w", err)
	}
	return g.Seal(out, nonce, plaintext, additional(out[:headerSize], aad)), nil
}

// Open decrypts what Seal returned, given the same key and aad. Every
// failure wraps ErrDecrypt; a value sealed with another key also wraps
// ErrWrongKey and names both key ids.
func Open(key Key, sealed, aad []byte) ([]byte, error) {
	g, err := key.aead()
	if err != nil {
		return nil, fmt.Errorf("open sealed secret: %w", err)
	}
	if len(sealed) < headerSize+g.Overhead() {
		return nil, fmt.Errorf("open sealed secret: %d bytes is too short to be one: %w", len(sealed), ErrDecrypt)
	}
	if sealed[0] != formatV1 {
		return nil, fmt.Errorf("open sealed secret: unknown format %d: %w", sealed[0], ErrDecrypt)
	}
	id := key.id()
	if subtle.ConstantTimeCompare(sealed[1:1+keyIDSize], id[:]) != 1 {
		return nil, fmt.Errorf("open sealed secret: it was sealed with another key (id %x), not the configured key (id %s); set %s to the key it was sealed with, or set the secret again: %w: %w",
			sealed[1:1+keyIDSize], key.ID(), EnvKey, ErrWrongKey, ErrDecrypt)
	}
	header := sealed[:headerSize]
	plain, err := g.Open(nil, header[1+keyIDSize:], sealed[headerSize:], additional(header, aad))
	if err != nil {
		// GCM does not say which: the bytes were altered, or the value
		// belongs to another owner or version.
		return nil, fmt.Errorf("open sealed secret: it was altered or belongs to another owner: %w", ErrDecrypt)
	}
	return plain, nil
}
