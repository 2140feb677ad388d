package main

import (
	"fmt"

	"github.com/vsl-milter/vsl-milter/config"
	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/vsl"
)

// loadConfig reads the configuration at path, or returns the embedded
// default when path is "".
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

// ruleOptions derives the rule loading options from the configuration.
func ruleOptions(cfg *config.Config) policy.Options {
	lim := vsl.DefaultLimits()
	if cfg.VSL.MaxOperations > 0 {
		lim.MaxOperations = cfg.VSL.MaxOperations
	}
	if cfg.VSL.MaxCallDepth > 0 {
		lim.MaxCallDepth = cfg.VSL.MaxCallDepth
	}
	return policy.Options{Limits: lim}
}

// loadRules loads the rule set the configuration names, or the embedded
// default rules when it names none.
func loadRules(cfg *config.Config) (*policy.Rules, error) {
	if p := cfg.RulesPath(); p != "" {
		return policy.LoadFile(p, ruleOptions(cfg))
	}
	return policy.LoadDefault(ruleOptions(cfg))
}

// onError maps the configuration's on_error to the policy's.
func onError(cfg *config.Config) policy.OnError {
	oe, ok := policy.ParseOnError(string(cfg.Milter.OnError))
	if !ok {
		panic(fmt.Sprintf("config accepted an unknown on_error %q", cfg.Milter.OnError))
	}
	return oe
}
