package output_test

import (
	"context"
	"fmt"
	"strings"

	"shfleet/output"
)

func ExampleTemplate_Render() {
	tmpl, err := output.ParseTemplate(output.DefaultPathTemplate)
	if err != nil {
		panic(err)
	}
	key, err := tmpl.Render(output.PathVars{
		RequestID: "job-42",
		TileName:  "../../etc", // sanitised: cannot leave the store's root
		Date:      "2024-01-31",
		OutputID:  "default",
		Format:    output.FormatExt("image/tiff"),
	})
	fmt.Println(key, err)
	// Output: job-42/____etc/2024-01-31/default.tif <nil>
}

func ExampleStore_PutIfAbsent() {
	ctx := context.Background()
	store, err := output.Open(ctx, "mem://")
	if err != nil {
		panic(err)
	}
	defer store.Close()

	obj, written, err := store.PutIfAbsent(ctx, "job/T1/2024-01-31/default.tif", strings.NewReader("tiff bytes"), output.PutOptions{})
	fmt.Println(obj.Size, obj.SHA256[:12], written, err)
	// A resumed run skips the complete output without reading the body.
	obj, written, err = store.PutIfAbsent(ctx, "job/T1/2024-01-31/default.tif", strings.NewReader("ignored"), output.PutOptions{})
	fmt.Println(obj.Size, obj.SHA256[:12], written, err)
	// Output:
	// 10 b43f1fbbae2d true <nil>
	// 10 b43f1fbbae2d false <nil>
}
