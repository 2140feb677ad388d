package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/vsl-milter/vsl-milter/delivery"
	"github.com/vsl-milter/vsl-milter/policy"
)

func ExampleAgent_Deliver() {
	root, err := os.MkdirTemp("", "maildirs")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)

	agent, err := delivery.New(delivery.Options{MaildirRoot: root, Hostname: "mx.example.com"})
	if err != nil {
		log.Fatal(err)
	}
	msg := []byte("Subject: hello\r\n\r\nHello Bob.\r\n")
	err = agent.Deliver(context.Background(), msg, policy.ParseMailAddr("<alice@example.org>"), []policy.DeliveryChoice{
		{Rcpt: policy.ParseMailAddr("<bob@Example.COM>"), Transport: policy.Maildir},
		{Rcpt: policy.ParseMailAddr("<carol@example.com>"), Transport: policy.Deliver}, // left to the MTA
	})
	if err != nil {
		log.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "example.com", "bob", "new", "*"))
	data, _ := os.ReadFile(files[0])
	fmt.Print(string(data))
	// Output:
	// Return-Path: <alice@example.org>
	// Delivered-To: bob@Example.COM
	// Subject: hello
	//
	// Hello Bob.
}

func ExampleError() {
	agent, err := delivery.New(delivery.Options{Hostname: "mx.example.com"})
	if err != nil {
		log.Fatal(err)
	}
	err = agent.Deliver(context.Background(), []byte("Subject: x\r\n\r\n"), policy.ParseMailAddr("<alice@example.org>"),
		[]policy.DeliveryChoice{{Rcpt: policy.ParseMailAddr("<bob@example.com>"), Transport: policy.Forward, Target: "ftp://relay"}})
	var e *delivery.Error
	if errors.As(err, &e) {
		for _, f := range e.Failures {
			fmt.Printf("%s temporary=%v\n", f.Rcpt, f.Temporary)
		}
		fmt.Println(err)
	}
	// Output:
	// bob@example.com temporary=false
	// permanent failure delivering to <bob@example.com> by forward to ftp://relay: invalid forward target "ftp://relay": unsupported scheme ftp
}
