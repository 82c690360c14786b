package auth

// Verifiers made by PostgreSQL 15 (CREATE ROLE … PASSWORD with
// password_encryption = 'scram-sha-256', read back from pg_authid), used to
// prove that pgrotate builds and checks verifiers exactly as PostgreSQL does.
var pgVectors = []struct {
	name, user, password, secret string
}{
	{
		name: "ascii", user: "bookstore_user_0001", password: "secret0001",
		secret: "SCRAM-SHA-256$4096:FRXup7RLOPrL6wri0HT7pg==$Y29ITGd8VIhsxa5Gp5WquEpXPuUp8gBbRgOnLCyamwM=:0iicIcF4f2pnh9mQKQOTChurHjDUnGFxD0i67uVz8AA=",
	},
	{
		// SASLprep maps the no-break space to a plain space.
		name: "non-ascii space", user: "auth_probe_nbsp", password: "pass\u00a0word",
		secret: "SCRAM-SHA-256$4096:5GAsKvCAVJofwSHsCJGxmg==$1Yg11J8yzInASPkoILj9tQ6I+w0vjhR7dR99vE0jtr0=:TLurj/GucoQlXBdVe47ZMvhzs6FgxWdbUBhNbSsZ7wc=",
	},
	{
		// SASLprep's NFKC turns the ligature into "fi".
		name: "ligature", user: "auth_probe_ligature", password: "\ufb01x",
		secret: "SCRAM-SHA-256$4096:FV/DSwwmnfgneg4gSoU2OQ==$KOl/KR3R9jHyHPu2kUm/pcqrArUVsNLS0jSuKA+9AF4=:AjM3NIsFls5ryUlFxFzIFbzbwurM67UA3jyh+085XNU=",
	},
	{
		// Unassigned in Unicode 3.2: SASLprep fails, the raw bytes are used.
		name: "emoji", user: "auth_probe_emoji", password: "pw\U0001f511key",
		secret: "SCRAM-SHA-256$4096:CaADPzO7p2yqnLuB9Yz+oA==$laQ/2YhyEcj0eDR2OD0js5SBZnG138HGA+n/X+1TjdE=:u75d6CUC/Fs65v52EYRRB7xWVQdSPm0rmGX2ZYKSr7E=",
	},
	{
		// Pure ASCII is never prepared, control characters included.
		name: "ascii control", user: "auth_probe_ctrl", password: "pw\x01ctl",
		secret: "SCRAM-SHA-256$4096:lL7+2NrcI1vx7kRREl8Geg==$+s20nsqPwI9VVmHH+sWnly3/IwXm7OK2juTafLGF2B8=:mNisFb4to/D9Lyew9qeJlauKgi0Ta0phy2VS7ZsVVRs=",
	},
}

// pgMD5Vector is PostgreSQL 15's md5 secret (password_encryption = 'md5')
// for role auth_probe_md5 with password "secret0001".
const pgMD5Vector = "md545248a38b4a2956a856f80bbf4a916cb"
