package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"

	"github.com/xdg-go/scram"
)

// processMockKey is the MockSaltKey used when Options leaves it nil. It is
// the package's one piece of global state, on purpose: a key per call would
// show a new salt on every attempt, which gives unknown users away.
var processMockKey = sync.OnceValue(func() []byte {
	key := make([]byte, sha256.Size)
	// crypto/rand.Read never returns an error on supported platforms.
	_, _ = rand.Read(key)
	return key
})

// mockCredentials returns SCRAM credentials for a user who has no usable
// SCRAM secret, like PostgreSQL's scram_mock_salt (a hash of the user name
// and the cluster's mock_auth_nonce): the salt is the same on every attempt,
// so it looks like a real user's, and no proof can ever match the keys.
func mockCredentials(user string, key []byte) scram.StoredCredentials {
	if key == nil {
		key = processMockKey()
	}
	derive := func(label string) []byte {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(label))
		mac.Write([]byte{0})
		mac.Write([]byte(user))
		return mac.Sum(nil)
	}
	return scram.StoredCredentials{
		KeyFactors: scram.KeyFactors{Salt: string(derive("salt")[:scramSaltLen]), Iters: DefaultSCRAMIterations},
		StoredKey:  derive("stored key"),
		ServerKey:  derive("server key"),
	}
}
