package objstore

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyauth "github.com/aws/smithy-go/auth"
	smithyendpoints "github.com/aws/smithy-go/endpoints"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// staticEndpoint resolves every request to a configured endpoint (R2, MinIO,
// versitygw, …) without the SDK's endpoint rules. For a region outside
// AWS's partition list, such as R2's "auto", the rules compile every
// partition's region regular expression on every request, twice (endpoint
// and auth scheme): a tenth of the sink's CPU and a fifth more in garbage
// collection at 512 tables, where blocks are small and requests many. The
// result is what the rules give for a custom endpoint: the bucket in the
// path or in the host, SigV4 for "s3" in the client's region, no double
// encoding of the path.
type staticEndpoint struct {
	base      url.URL
	pathStyle bool
}

func newStaticEndpoint(endpoint string, pathStyle bool) (*staticEndpoint, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("s3: endpoint %q is not an absolute URL", endpoint)
	}
	return &staticEndpoint{base: *u, pathStyle: pathStyle}, nil
}

// ResolveEndpoint implements s3.EndpointResolverV2.
func (e *staticEndpoint) ResolveEndpoint(_ context.Context, p s3.EndpointParameters) (smithyendpoints.Endpoint, error) {
	u := e.base
	if p.Bucket != nil && *p.Bucket != "" {
		if e.pathStyle {
			u.Path = strings.TrimSuffix(u.Path, "/") + "/" + *p.Bucket
			u.RawPath = ""
		} else {
			u.Host = *p.Bucket + "." + u.Host
		}
	}
	region := ""
	if p.Region != nil {
		region = *p.Region
	}
	var props smithy.Properties
	smithyauth.SetAuthOptions(&props, []*smithyauth.Option{{
		SchemeID: smithyauth.SchemeIDSigV4,
		SignerProperties: func() smithy.Properties {
			var sp smithy.Properties
			smithyhttp.SetDisableDoubleEncoding(&sp, true)
			smithyhttp.SetSigV4SigningName(&sp, "s3")
			smithyhttp.SetSigV4SigningRegion(&sp, region)
			return sp
		}(),
	}})
	return smithyendpoints.Endpoint{URI: u, Properties: props}, nil
}
