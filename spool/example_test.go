package spool_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/vsl-milter/vsl-milter/delivery"
	"github.com/vsl-milter/vsl-milter/policy"
	"github.com/vsl-milter/vsl-milter/spool"
)

// An SMTP server enqueues an accepted message; the spool's workers run the
// delivery stage, whose rule puts the copy into a maildir.
func Example() {
	root, err := os.MkdirTemp("", "spool-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	maildirs := filepath.Join(root, "maildirs")
	os.Mkdir(maildirs, 0o700)

	rules, err := policy.Load("main.vsl", []byte(`#{ delivery: [ action "local" || maildir_all() ] }`), policy.Options{})
	if err != nil {
		log.Fatal(err)
	}
	agent, err := delivery.New(delivery.Options{MaildirRoot: maildirs, Hostname: "mx.example"})
	if err != nil {
		log.Fatal(err)
	}
	sp, err := spool.Open(spool.Options{
		Dir: filepath.Join(root, "spool"), AppDir: filepath.Join(root, "app"),
		Rules: func() *policy.Rules { return rules }, Agent: agent, Hostname: "mx.example",
		RetryPeriod: 5 * time.Minute, RetryMax: 100,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sp.Close()

	// What the SMTP server does at the end of DATA, before its 250.
	saved := policy.Saved{
		ServerName: "mx.example", Helo: "client.example",
		MailFrom: policy.ParseMailAddr("<alice@example.org>"),
		Rcpts:    []policy.MailAddr{policy.ParseMailAddr("<bob@example.net>")},
	}
	msg := []byte("From: alice@example.org\r\nSubject: hello\r\n\r\nHi Bob.\r\n")
	if _, err := sp.Enqueue(context.Background(), saved, msg); err != nil {
		log.Fatal(err) // answer 451: the message is not safe
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- sp.Run(ctx) }()
	for st := sp.Stats(); st[spool.QueueIncoming]+st[spool.QueueWorking] > 0; st = sp.Stats() {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done

	files, _ := filepath.Glob(filepath.Join(maildirs, "example.net", "bob", "new", "*"))
	f, err := os.Open(files[0])
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fmt.Println(sc.Text())
	}
	fmt.Println(sp.Stats())
	// Output:
	// Return-Path: <alice@example.org>
	// Delivered-To: bob@example.net
	// From: alice@example.org
	// Subject: hello
	//
	// Hi Bob.
	// map[dead:0 deferred:0 delegated:0 incoming:0 working:0]
}
