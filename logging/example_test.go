package logging_test

import (
	"fmt"
	"os"

	"github.com/vsl-milter/vsl-milter/logging"
	"github.com/vsl-milter/vsl-milter/policy"
)

// A root logger from the configuration, the adapter for the rules'
// log(level, text), and the observer that reports script errors.
func Example() {
	log, err := logging.New("vsl-milter", logging.Options{Level: "info", JSON: true, Output: os.Stdout})
	if err != nil {
		fmt.Println(err)
		return
	}
	opts := policy.RunOptions{
		Log:      logging.ScriptLog(log.Named("rules")),
		Observer: logging.Observer{Log: log},
	}
	_ = opts // passed to (*policy.Rules).Run

	_, err = logging.New("vsl-milter", logging.Options{Level: "loud"})
	fmt.Println(err)
	// Output:
	// logger "vsl-milter": unknown log level "loud": use trace, debug, info, warn or error
}
