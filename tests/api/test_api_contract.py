"""The API keeps the contract its OpenAPI schema states: schemathesis generates requests from the
schema alone (valid ones and invalid ones, plus methods the schema does not list) and sends them
to the real `recsys serve` over loopback.

Every check schemathesis runs by default applies: no 5xx; only status codes, content types and
headers the schema declares; bodies that match the response schemas; schema-valid requests
accepted (a 404 for an id that does not exist counts as accepted) and schema-invalid ones rejected;
405 with an Allow header for an undeclared method. So a limit the code enforces but the schema does
not state, or a status code a route gives but does not declare, fails here.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import settings


@pytest.fixture(scope="module")
def api_schema(served):
    server, _ = served
    # The base URL of the requests is the server the schema came from (the schema names none).
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def node_id_for_schemathesis(request):
    # schemathesis 4.32's pytest integration reads and renames `item._nodeid`, which pytest 9.2
    # renamed to `_id`: without it the test ends in an AttributeError before the first request.
    request.node._nodeid = request.node.nodeid


@schema.parametrize()
# 25 fuzzed cases per operation, plus the coverage phase's own boundary and wrong-method cases,
# keep the six operations at seconds. (Stateful call sequences are not part of parametrize();
# the CLI, `schemathesis run`, adds them.)
@settings(max_examples=25, deadline=None)
def test_the_server_keeps_the_contract_its_schema_states(case):
    case.call_and_validate()
