module github.com/firstrun/firstrun

go 1.26.8

require (
	github.com/aymanbagabas/go-udiff v0.4.1
	github.com/kelseyhightower/envconfig v1.4.0
	go.uber.org/zap v1.28.0
)

require (
	github.com/stretchr/testify v1.11.1 // indirect
	go.uber.org/multierr v1.10.0 // indirect
)
