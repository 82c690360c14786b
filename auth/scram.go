package auth

import (
	"encoding/base64"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/xdg-go/scram"
)

const (
	mechSCRAM     = "SCRAM-SHA-256"
	mechSCRAMPlus = "SCRAM-SHA-256-PLUS"
	// scramNonceLen is PostgreSQL's SCRAM_RAW_NONCE_LEN.
	scramNonceLen = 18
)

// scramExchange is one SCRAM-SHA-256 exchange. xdg-go/scram checks a proof
// against one StoredCredentials per conversation, so to accept any of
// several secrets that share a salt and iteration count it runs one
// conversation per secret, all with the same server nonce: they send the
// client identical messages, and the client's proof is then checked by each.
type scramExchange struct {
	user  string
	convs []*scram.ServerConversation
	// mockReason is non-empty when the user has no usable SCRAM secret;
	// the exchange then runs to the proof and fails with this reason.
	mockReason string
}

// authSCRAM runs the SASL exchange (PostgreSQL protocol docs, "SASL
// Authentication"; RFC 5802, RFC 7677) on c, driving an Exchange. secrets
// share one salt and iteration count; when there are none, mockReason
// says why.
func authSCRAM(c *conn, secrets []Secret, mockReason string, opts Options) error {
	x, first, err := startSCRAM(c.user, secrets, mockReason, opts)
	if err != nil {
		return err
	}
	if err := c.send(first); err != nil {
		return err
	}
	initial, err := receiveAs[*pgproto3.SASLInitialResponse](c, pgproto3.AuthTypeSASL, "SASLInitialResponse")
	if err != nil {
		return err
	}
	cont, err := x.initial(initial)
	if err != nil {
		return err
	}
	if err := c.send(cont); err != nil {
		return err
	}
	response, err := receiveAs[*pgproto3.SASLResponse](c, pgproto3.AuthTypeSASLContinue, "SASLResponse")
	if err != nil {
		return err
	}
	final, err := x.response(response)
	if err != nil {
		return err
	}
	// Queued, not flushed: the caller sends AuthenticationOk and the rest of
	// the greeting after it, in the same write (see Authenticate).
	c.be.Send(final)
	return nil
}

// mechanisms are the SASL mechanisms offered: SCRAM-SHA-256-PLUS first
// over TLS, as PostgreSQL does.
func mechanisms(opts Options) []string {
	if len(opts.ChannelBinding) > 0 {
		return []string{mechSCRAMPlus, mechSCRAM}
	}
	return []string{mechSCRAM}
}

func newSCRAMExchange(user string, secrets []Secret, mockReason string, opts Options) (*scramExchange, error) {
	rawNonce, err := readRandom(opts.rand(), scramNonceLen)
	if err != nil {
		return nil, err
	}
	nonce := base64.StdEncoding.EncodeToString(rawNonce)
	creds := make([]scram.StoredCredentials, 0, len(secrets))
	for _, s := range secrets {
		creds = append(creds, scram.StoredCredentials{
			KeyFactors: scram.KeyFactors{Salt: string(s.salt), Iters: s.iterations},
			StoredKey:  s.storedKey,
			ServerKey:  s.serverKey,
		})
	}
	if len(creds) == 0 {
		creds = append(creds, mockCredentials(user, opts.MockSaltKey))
	}
	x := &scramExchange{user: user, mockReason: mockReason}
	for _, cred := range creds {
		x.convs = append(x.convs, newConversation(cred, nonce, opts.ChannelBinding))
	}
	return x, nil
}

// newConversation makes a server conversation that checks cred. The lookup
// ignores the SCRAM user name: PostgreSQL clients send an empty one
// ("n,,n=,r=…") because the user comes from the startup packet.
func newConversation(cred scram.StoredCredentials, nonce string, binding []byte) *scram.ServerConversation {
	lookup := func(string) (scram.StoredCredentials, error) { return cred, nil }
	// NewServer only fails on a nil lookup.
	server, _ := scram.SHA256.NewServer(lookup)
	server = server.WithNonceGenerator(func() string { return nonce })
	if len(binding) == 0 {
		return server.NewConversation()
	}
	return server.NewConversationWithChannelBinding(scram.ChannelBinding{
		Type: scram.ChannelBindingTLSServerEndpoint,
		Data: slices.Clone(binding),
	})
}

// first checks the chosen mechanism against the client-first-message's
// channel binding flag, as PostgreSQL's read_client_first_message does, and
// returns the server-first-message.
func (x *scramExchange) first(mech, clientFirst string, offered []string) (string, error) {
	if !slices.Contains(offered, mech) {
		return "", protocolErr("client selected an invalid SASL authentication mechanism", nil)
	}
	bindsChannel := strings.HasPrefix(clientFirst, "p")
	if mech == mechSCRAMPlus && !bindsChannel {
		return "", protocolErr("client selected SCRAM-SHA-256-PLUS without channel binding", nil)
	}
	if mech == mechSCRAM && bindsChannel {
		return "", protocolErr("client selected SCRAM-SHA-256 but sent channel binding data", nil)
	}
	var serverFirst string
	for i, conv := range x.convs {
		resp, err := conv.Step(clientFirst)
		if err != nil {
			return "", x.firstError(resp)
		}
		if i == 0 {
			serverFirst = resp
		}
	}
	if x.convs[0].AuthzID() != "" {
		return "", protocolErr("client uses authorization identity, but it is not supported", nil)
	}
	return serverFirst, nil
}

// firstError classifies a failed client-first-message by the RFC 5802
// server-error xdg-go/scram reports. Its Go error is dropped on purpose: it
// quotes what the client sent.
func (x *scramExchange) firstError(serverErr string) error {
	switch serverErr {
	case scram.ErrServerDoesSupportChannelBinding:
		// The client supports binding but did not see PLUS offered: a
		// downgrade by someone in the middle (RFC 5802 §6).
		return x.failed("client chose SCRAM-SHA-256 without binding although it supports it")
	case scram.ErrUnsupportedChannelBindingType, scram.ErrChannelBindingNotSupported:
		return protocolErr("unsupported SCRAM channel binding type", nil)
	}
	return protocolErr("malformed SCRAM client-first-message", nil)
}

// final checks the client-final-message against every conversation and
// returns the server-final-message of the one whose secret the proof
// matches. Every conversation is stepped, so the time taken does not depend
// on which secret matched.
func (x *scramExchange) final(clientFinal string) (string, error) {
	var serverFinal, firstErr string
	matched := false
	for i, conv := range x.convs {
		resp, err := conv.Step(clientFinal)
		if err == nil && conv.Valid() && !matched {
			serverFinal, matched = resp, true
		}
		if i == 0 && err != nil {
			firstErr = resp
		}
	}
	switch {
	case firstErr == "" && !matched:
		return "", protocolErr("malformed SCRAM client-final-message", nil)
	case firstErr == scram.ErrOtherError:
		// xdg-go/scram reports a wrong nonce and a proof of the wrong
		// length this way; PostgreSQL calls both a protocol violation.
		return "", protocolErr("SCRAM nonce mismatch or malformed proof", nil)
	case x.mockReason != "":
		return "", x.failed(x.mockReason)
	case matched:
		return serverFinal, nil
	case firstErr == scram.ErrChannelBindingsDontMatch:
		return "", x.failed("channel binding mismatch")
	}
	return "", x.failed("wrong password")
}

func (x *scramExchange) failed(reason string) error {
	if x.mockReason != "" {
		reason = x.mockReason
	}
	return &FailedError{User: x.user, Reason: reason}
}
