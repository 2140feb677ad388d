package policy

import _ "embed"

// defaultRules is the embedded rule set of a configuration without rules.
//
//go:embed default.vsl
var defaultRules []byte

// DefaultRulesPath is the name under which the embedded default rules are
// loaded (it appears in their errors and positions).
const DefaultRulesPath = "<default>/main.vsl"

// LoadDefault loads the embedded default rule set: it logs every
// transaction and decides nothing.
func LoadDefault(opts Options) (*Rules, error) {
	return Load(DefaultRulesPath, defaultRules, opts)
}
