"""S3's own check of a pre-signed (SigV4 query) URL, for the tests: moto accepts any
signature on a pre-signed URL, so this recomputes it, with botocore's signer, from the
headers a request really carries, as S3 does on arrival."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def signed_headers(url: str) -> list[str]:
    """The header names a pre-signed URL's signature covers."""
    return dict(parse_qsl(urlsplit(url).query))["X-Amz-SignedHeaders"].split(";")


def s3_accepts(prepared: requests.PreparedRequest, access_key: str, secret_key: str) -> bool:
    """Whether S3 would find the signature of `prepared` (a request to a pre-signed URL)
    valid: every signed header present and the signature computed from their values equal
    to the URL's. Expiry is not checked."""
    parts = urlsplit(prepared.url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    params = dict(query)
    signed = params["X-Amz-SignedHeaders"].split(";")
    # urllib3 adds Host from the URL; everything else is what requests prepared.
    sent = {k.lower(): v for k, v in prepared.headers.items()} | {"host": parts.netloc}
    if any(name not in sent for name in signed):
        return False
    scope = params["X-Amz-Credential"].split("/")  # key/date/region/service/aws4_request
    auth = S3SigV4QueryAuth(
        Credentials(access_key, secret_key), scope[3], scope[2], int(params["X-Amz-Expires"])
    )
    unsigned = [(k, v) for k, v in query if k != "X-Amz-Signature"]
    request = AWSRequest(
        method=prepared.method,
        url=urlunsplit(parts._replace(query=urlencode(unsigned))),
        headers={name: sent[name] for name in signed},
    )
    request.context["timestamp"] = params["X-Amz-Date"]
    string_to_sign = auth.string_to_sign(request, auth.canonical_request(request))
    return auth.signature(string_to_sign, request) == params["X-Amz-Signature"]
