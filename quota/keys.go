package quota

import (
	"crypto/sha256"
	"encoding/hex"

	"shfleet/keys"
)

// AccountTag returns the Redis Cluster hash tag for an account (OAuth client id):
// "{" + the first 16 hex digits of sha256(clientID) + "}". The client id itself never
// appears in a key, and all of one account's keys share one cluster slot so a Lua
// script may touch them together.
func AccountTag(clientID string) string {
	sum := sha256.Sum256([]byte(clientID))
	return "{" + hex.EncodeToString(sum[:8]) + "}"
}

// AccountKey returns prefix:{tag}:suffix, the name of one of an account's keys,
// e.g. AccountKey("shfleet", id, "token") or AccountKey("shfleet", id, "policy:pu:PT1M").
func AccountKey(prefix, clientID, suffix string) string {
	if prefix == "" {
		prefix = keys.DefaultPrefix
	}
	return prefix + ":" + AccountTag(clientID) + ":" + suffix
}
