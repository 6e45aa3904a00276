"""One AWS API call through boto3, for the integration tests to read back what provision made
(the tests would otherwise need an SDK crate per service). Usage:

    python aws_call.py ENDPOINT SERVICE OPERATION [JSON-PARAMS]

Prints the response as JSON (dates as strings) on stdout; on an API error prints
{"Error": {"Code": ..., "Message": ...}} and exits 0, so the caller can assert on it.
"""
import json
import sys

import boto3
from botocore.exceptions import ClientError


def main() -> None:
    endpoint, service, operation = sys.argv[1:4]
    params = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    client = boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    try:
        out = getattr(client, operation)(**params)
    except ClientError as e:
        out = {"Error": e.response.get("Error", {})}
    out.pop("ResponseMetadata", None)
    json.dump(out, sys.stdout, default=str)


if __name__ == "__main__":
    main()
