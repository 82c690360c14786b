package rotation

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

const (
	reasonTruncatedJSON = "truncated JSON (file may be half-written)"
	reasonNotObject     = "JSON is not an object"
)

// maxJSONNesting bounds how deep parseJSON looks for the credential under
// "data": Vault's database engine answers {"data":{...}}, its KV v2 engine
// {"data":{"data":{...}}}.
const maxJSONNesting = 2

// parseJSON reads {"username","password","host","port","dbname"}, accepting
// "user" and "database" as aliases and ignoring unknown keys such as AWS's
// "engine". The json package's own errors are not returned: a SyntaxError's
// text quotes the offending character, which may be part of a password.
func parseJSON(data []byte) (Credential, string) {
	if len(bytes.TrimSpace(data)) == 0 {
		return Credential{}, reasonEmpty
	}
	obj, reason := decodeObject(data)
	if reason != "" {
		return Credential{}, reason
	}
	for range maxJSONNesting {
		if has(obj, "username", "user", "password") || !has(obj, "data") {
			break
		}
		inner, reason := decodeObject(obj["data"])
		if reason != "" {
			break
		}
		obj = inner
	}
	var f fields
	for _, field := range []struct {
		dst  *string
		keys []string
	}{
		{&f.username, []string{"username", "user"}},
		{&f.password, []string{"password"}},
		{&f.host, []string{"host"}},
		{&f.dbname, []string{"dbname", "database"}},
	} {
		if *field.dst, reason = stringField(obj, field.keys...); reason != "" {
			return Credential{}, reason
		}
	}
	if f.port, reason = portField(obj["port"]); reason != "" {
		return Credential{}, reason
	}
	return f.credential()
}

// decodeObject decodes one JSON object, classifying failures by fixed
// reasons only.
func decodeObject(data []byte) (map[string]json.RawMessage, string) {
	var obj map[string]json.RawMessage
	err := json.Unmarshal(data, &obj)
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil && obj == nil:
		return nil, reasonNotObject // the literal null
	case err == nil:
		return obj, ""
	case errors.As(err, &syntax) && isCut(data, syntax.Offset):
		return nil, reasonTruncatedJSON
	case errors.As(err, &syntax):
		return nil, "invalid JSON at byte offset " + strconv.FormatInt(syntax.Offset, 10)
	case errors.As(err, &typ):
		return nil, reasonNotObject
	}
	return nil, "invalid JSON"
}

// isCut reports whether a JSON syntax error at offset is the end of a text
// cut short (a file half-written): at its end, with no closing brace. A
// mistake such as a trailing comma also fails at the end, before the brace.
func isCut(data []byte, offset int64) bool {
	text := bytes.TrimRight(data, " \t\r\n")
	return offset >= int64(len(text)) && !bytes.HasSuffix(text, []byte("}"))
}

// has reports whether obj holds any of keys with a non-null value.
func has(obj map[string]json.RawMessage, keys ...string) bool {
	for _, k := range keys {
		if v, ok := obj[k]; ok && string(v) != "null" {
			return true
		}
	}
	return false
}

// stringField returns the first of keys present in obj as a string; null
// counts as absent.
func stringField(obj map[string]json.RawMessage, keys ...string) (string, string) {
	for _, k := range keys {
		v, ok := obj[k]
		if !ok || string(v) == "null" {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			return "", "field " + strconv.Quote(k) + " is not a string"
		}
		return s, ""
	}
	return "", ""
}

// portField accepts a port as a JSON number (AWS writes 5432) or a string
// (Vault templates often write "5432").
func portField(v json.RawMessage) (string, string) {
	if v == nil || string(v) == "null" {
		return "", ""
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s, ""
	}
	var n json.Number
	if json.Unmarshal(v, &n) == nil {
		return n.String(), ""
	}
	return "", reasonBadPort
}
