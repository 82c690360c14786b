// Package configs owns pgrotate's configuration file: its schema, its
// defaults, ${ENV} expansion and validation.
//
// The keys, their defaults and their allowed values are documented on the
// fields of Config and the types it holds; examples/ has commented,
// complete files, which the tests load.
//
// A config is parsed once, at start-up and on SIGHUP, and then passed into
// constructors; nothing in this package is global. Parsing goes through a
// yaml.Node tree rather than straight into structs so that every problem can
// be reported as file:line: key: message, and so that all problems are
// reported at once instead of one per edit-and-retry cycle:
//
//	pgrotate.yaml:7: databases.bookstore.pool_sise: unknown key
//	pgrotate.yaml:9: databases.bookstore.pool_size: expected an integer, got "twenty"
//
// Values may refer to the environment as ${VAR} or ${VAR:-default}; $$ is a
// literal $, and a $ followed by anything else is kept as it is (SCRAM
// verifiers contain several). Expanded values can be secrets (a verifier
// handed in from a Kubernetes Secret, say), so error messages name the
// variable, never its value, and no message ever quotes a verifier.
//
// Keys the schema does not know are errors, so a misspelt setting is never
// silently ignored. YAML anchors and "<<" merge keys work, which lets
// several databases share settings.
package configs
