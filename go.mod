module github.com/vsl-milter/vsl-milter

go 1.26
