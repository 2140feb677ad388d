// Package service implements vSL services: the host values through which a
// rule script reaches third-party software. They are the only way a script
// reaches processes, files or the network.
//
// Three kinds exist, each declared either with the v1 statement
// `service NAME TYPE = #{...};` (see Declare) or with a v2 constructor
// function (see Define):
//
//	TYPE     v2 constructor     type_of   what it is
//	cmd      cmd::build(#{..})  "cmd"     a program run directly (never a shell): .run(), .run(args)
//	smtp     smtp::connect(#{}) "smtp"    a delegation target for the delegate directive
//	db:csv   csv::file(#{..})   "db:csv"  a CSV file used as a table: .get(key), .set(fields), .rm(key)
//
// cmd::build and smtp::connect are vSMTP v2's names. vSMTP v2 opened csv
// tables through a plugin (`import "plugins/libvsmtp_plugin_csv" as db;`
// then `db::csv(#{...})`); csv::file is vsl-milter's name, and PluginSource
// gives a Loader a module that makes the plugin spelling work. vSMTP's
// db:mysql is not supported.
//
// A service prints as `service NAME (TYPE)`. Services are immutable once
// built (the CSV table's contents change, its configuration does not) and
// safe for concurrent use by rules running on many transactions.
//
// Declaring a service touches nothing outside the process except the CSV
// connector, which is read (or, for a writable table, its directory
// checked) at load time. Nothing connects to the network at load.
//
// The package knows the vSL interpreter (package vsl) and the standard
// library only. It must not know milter, SMTP sessions, transactions or
// rule stages: the delegate directive that uses an SMTP service lives in
// package delegate, and whoever wires the Env decides where services may be
// declared.
package service
