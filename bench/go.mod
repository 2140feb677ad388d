module github.com/vsl-milter/vsl-milter/bench

go 1.26.0

require github.com/d--j/go-milter v0.10.2

require (
	github.com/emersion/go-message v0.18.2 // indirect
	golang.org/x/text v0.42.0 // indirect
)

replace github.com/vsl-milter/vsl-milter => ../
