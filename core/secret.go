package core

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Secrets seals card-key PINs and phone numbers with AES-256-GCM under the database's
// data key, and derives a keyed hash (HMAC-SHA256) for looking them up, so neither the
// plaintext nor an unkeyed hash of it is ever stored.
type Secrets struct {
	aead  cipher.AEAD
	index []byte
}

// NewSecrets builds the sealer from a 32-byte data key.
func NewSecrets(dataKey []byte) (*Secrets, error) {
	if len(dataKey) != 32 {
		return nil, errors.New("data key must be 32 bytes")
	}
	block, err := aes.NewCipher(dataKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, dataKey)
	m.Write([]byte("kameng index key v1"))
	return &Secrets{aead: aead, index: m.Sum(nil)}, nil
}

// Seal encrypts plaintext; ad binds the ciphertext to its row (e.g. the code) so a
// ciphertext copied onto another row does not open.
func (s *Secrets) Seal(plaintext, ad string) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	return s.aead.Seal(nonce, nonce, []byte(plaintext), []byte(ad))
}

// Open decrypts what Seal produced.
func (s *Secrets) Open(sealed []byte, ad string) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return "", Errorf(ErrKey, "sealed value is too short")
	}
	p, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(ad))
	if err != nil {
		return "", Errorf(ErrKey, "cannot decrypt: wrong key or altered data")
	}
	return string(p), nil
}

// Index returns the keyed hash used to find a value without storing it.
func (s *Secrets) Index(value string) []byte {
	m := hmac.New(sha256.New, s.index)
	m.Write([]byte(value))
	return m.Sum(nil)
}

// NewDataKey returns 32 random bytes.
func NewDataKey() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(err)
	}
	return k
}

// PassphraseKey derives a key-encryption key with Argon2id.
func PassphraseKey(passphrase string, salt []byte) []byte {
	return argon2.IDKey([]byte(passphrase), salt, 1, 64*1024, 2, 32)
}

// WrapKey seals the data key under a key-encryption key.
func WrapKey(kek, dataKey []byte) ([]byte, error) {
	s, err := NewSecrets(kek)
	if err != nil {
		return nil, err
	}
	return s.Seal(string(dataKey), "kameng data key"), nil
}

// UnwrapKey opens a wrapped data key.
func UnwrapKey(kek, wrapped []byte) ([]byte, error) {
	s, err := NewSecrets(kek)
	if err != nil {
		return nil, err
	}
	k, err := s.Open(wrapped, "kameng data key")
	if err != nil {
		return nil, Errorf(ErrKey, "the data key does not open with this key file or passphrase")
	}
	return []byte(k), nil
}

// HashPassword returns an Argon2id hash in the PHC string form.
func HashPassword(password string) string {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		panic(err)
	}
	key := argon2.IDKey([]byte(password), salt, 2, 19*1024, 1, 32)
	return "$argon2id$v=19$m=19456,t=2,p=1$" + base64.RawStdEncoding.EncodeToString(salt) + "$" + base64.RawStdEncoding.EncodeToString(key)
}

// CheckPassword reports whether password matches a HashPassword hash.
func CheckPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}
