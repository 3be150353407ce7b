package quota

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/oauth2"
)

// tokenKDFInfo separates the token-encryption key from any other key that might
// ever be derived from the same client secret.
const tokenKDFInfo = "shfleet shared oauth token encryption v1"

// tokenRecordVersion is the format version of the value stored under the token key.
const tokenRecordVersion = 1

// tokenRecord is the JSON value stored in Redis under the token key. Expiry,
// issue time and fingerprint are in clear (Lua compares FP; other processes check
// Exp without decrypting); the token itself is AES-256-GCM sealed, with the clear
// fields as additional data so they cannot be altered without detection.
type tokenRecord struct {
	V     int    `json:"v"`
	FP    string `json:"fp"`  // hex SHA-256 of the access token
	Exp   int64  `json:"exp"` // expiry, Unix milliseconds
	Iat   int64  `json:"iat"` // when this process stored it, Unix milliseconds
	Nonce []byte `json:"nonce"`
	CT    []byte `json:"ct"`
}

// tokenDeriveKey derives the 32-byte AES key from the client secret with
// HKDF-SHA256 (the standard library's crypto/hkdf), salted with the client id.
func tokenDeriveKey(clientID, clientSecret string) ([]byte, error) {
	return hkdf.Key(sha256.New, []byte(clientSecret), []byte("shfleet:"+clientID), tokenKDFInfo, 32)
}

// tokenFingerprint is the hex SHA-256 of an access token: safe to store and to log
// (first 8 hex digits), useless to call the API with.
func tokenFingerprint(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return hex.EncodeToString(sum[:])
}

// tokenShortFP is the loggable prefix of a fingerprint.
func tokenShortFP(fp string) string {
	if len(fp) > 8 {
		return fp[:8]
	}
	return fp
}

func tokenAAD(fp string, exp, iat int64) []byte {
	return []byte("shfleet-token-v1|" + fp + "|" + strconv.FormatInt(exp, 10) + "|" + strconv.FormatInt(iat, 10))
}

func tokenAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// tokenSeal encrypts tok into a record; exp and iat are the token's expiry and
// the time it was stored.
func tokenSeal(key []byte, tok *oauth2.Token, exp, iat time.Time) ([]byte, error) {
	plain, err := json.Marshal(tok)
	if err != nil {
		return nil, fmt.Errorf("encode token: %w", err)
	}
	aead, err := tokenAEAD(key)
	if err != nil {
		return nil, err
	}
	rec := tokenRecord{
		V:     tokenRecordVersion,
		FP:    tokenFingerprint(tok.AccessToken),
		Exp:   exp.UnixMilli(),
		Iat:   iat.UnixMilli(),
		Nonce: make([]byte, aead.NonceSize()),
	}
	if _, err := rand.Read(rec.Nonce); err != nil {
		return nil, err
	}
	rec.CT = aead.Seal(nil, rec.Nonce, plain, tokenAAD(rec.FP, rec.Exp, rec.Iat))
	return json.Marshal(rec)
}

// errTokenUndecryptable means the stored value was written with another secret or
// is corrupt; callers treat it as a missing token.
var errTokenUndecryptable = errors.New("stored token cannot be decrypted (different client secret or corrupt value)")

// tokenOpen parses and decrypts a stored record.
func tokenOpen(key, raw []byte) (*oauth2.Token, tokenRecord, error) {
	var rec tokenRecord
	if err := json.Unmarshal(raw, &rec); err != nil || rec.V != tokenRecordVersion {
		return nil, rec, errTokenUndecryptable
	}
	aead, err := tokenAEAD(key)
	if err != nil {
		return nil, rec, err
	}
	if len(rec.Nonce) != aead.NonceSize() {
		return nil, rec, errTokenUndecryptable
	}
	plain, err := aead.Open(nil, rec.Nonce, rec.CT, tokenAAD(rec.FP, rec.Exp, rec.Iat))
	if err != nil {
		return nil, rec, errTokenUndecryptable
	}
	var tok oauth2.Token
	if err := json.Unmarshal(plain, &tok); err != nil || tokenFingerprint(tok.AccessToken) != rec.FP {
		return nil, rec, errTokenUndecryptable
	}
	tok.Expiry = time.UnixMilli(rec.Exp)
	tok.ExpiresIn = 0
	return &tok, rec, nil
}
