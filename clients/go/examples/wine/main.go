// The README's example: one wine record (13 floats) through the wine model, then a stream
// from echo. Usage: go run ./examples/wine [ADDRESS] (default 127.0.0.1:50051).
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	inferd "github.com/inferd/inferd/clients/go"
)

func main() {
	address := "127.0.0.1:50051"
	if len(os.Args) > 1 {
		address = os.Args[1]
	}
	client, err := inferd.Dial(address, inferd.Options{Timeout: 10 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()

	record := map[string]any{
		"alcohol": 13.2, "malic_acid": 1.78, "ash": 2.14, "alcalinity_of_ash": 11.2, "magnesium": 100,
		"total_phenols": 2.65, "flavanoids": 2.76, "nonflavanoid_phenols": 0.26, "proanthocyanins": 1.28,
		"color_intensity": 4.38, "hue": 1.05, "od280_od315": 3.4, "proline": 1050,
	}
	result, err := client.Infer(ctx, "wine", inferd.JSON([]any{record}), inferd.WithID("wine-1"))
	if err != nil {
		log.Fatal(err)
	}
	var answers []struct {
		Label         string    `json:"label"`
		Probabilities []float64 `json:"probabilities"`
	}
	if err := result.Output.Decode(&answers); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %s %.4f\n", result.ID, answers[0].Label, answers[0].Probabilities)

	for chunk, err := range client.Stream(ctx, "echo", inferd.Text("one two three")) {
		if err != nil {
			log.Fatal(err)
		}
		if chunk.Output != nil {
			fmt.Printf("chunk %d: %q\n", chunk.Index, chunk.Output.Text)
		}
	}

	_, err = client.Infer(ctx, "wine", inferd.JSON([]any{map[string]any{"alcohol": 1}}))
	var e *inferd.Error
	if errors.As(err, &e) {
		fmt.Printf("%s %s: record=%d path=%s\n", inferd.CodeName(e.Code), e.Reason, e.Details["record"], e.Details["path"])
	}
}
