# ruff: noqa: E501  (the seed's messages are kept verbatim)
# get_jwt_token.py
#
# The seed document's JWT helper, repaired; the host comes from EI_API_URL (default: the
# real Edge Impulse API). Run as a subprocess by tests/contract/test_seed_client.py.

import argparse
import json
import os

import requests

API_URL = os.environ.get("EI_API_URL", "https://studio.edgeimpulse.com/v1")


def get_token(username, password):
    url = API_URL + "/api-login"

    payload = json.dumps(
        {
            "username": username,
            "password": password,
        }
    )
    headers = {
        "accept": "application/json",
        "content-type": "application/json",
    }

    response = requests.request("POST", url, data=payload, headers=headers)

    if response.status_code != 200:
        raise Exception(
            "status code was not 200, but " + str(response.status_code) + " - " + response.text
        )

    j = response.json()
    if not j["success"]:
        raise Exception(
            "api request did not succeed " + str(response.status_code) + " - " + response.text
        )

    return j["token"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Get Edge Impulse JWT token")
    parser.add_argument("--username", type=str, required=True, help="Username or email address")
    parser.add_argument("--password", type=str, required=True)

    args, unknown = parser.parse_known_args()

    token = get_token(args.username, args.password)

    print("JWT token is:", token)
    print("Use this in portal_api.py via:")
    print("    export EI_JWT_TOKEN=" + token)
    print(
        "You can add the line above to your ~/.bashrc or ~/.zshrc file to automatically load the token in the future."
    )
    print("Note: This token is valid for a limited time!")
