"""The job POST /exports/ sends when the request has no body."""

import datetime
from typing import Any, Dict, Optional

CUSTOMERS = ["ACME Ltd", "Globex", "Initech GmbH", "Soylent & Co", "Umbrella Corp", "Hooli"]


def demo_job(nrows: int, service: Optional[str] = "tether") -> Dict[str, Any]:
    """@nrows contracts; with @service, two columns looked up there by "sn".

    No id: the client makes one up. The rows depend on @nrows only."""
    rows = []
    for i in range(nrows):
        rows.append({
            "sn": "C-%04d" % (i + 1),
            "customer": CUSTOMERS[i % len(CUSTOMERS)],
            "amount": round(250 + (i * 7919) % 100000 / 7.0, 2),
            "signed_on": (datetime.date(2026, 1, 1)
                          + datetime.timedelta(days=(i * 3) % 330)).isoformat(),
        })
    columns = [
        {"header": "Contract SN", "field": "sn", "width": 14},
        {"header": "Customer", "field": "customer", "width": 20},
        {"header": "Amount", "field": "amount", "type": "number", "format": "#,##0.00"},
        {"header": "Signed", "field": "signed_on", "type": "date"},
    ]
    job: Dict[str, Any] = {
        "filename": "contracts-demo.xlsx",
        "sheet": "Contracts",
        "columns": columns,
        "rows": rows,
        "result_ttl": 3600,
    }
    if service:
        job["lookup"] = {"service": service, "key": "sn"}
        columns += [
            {"header": "Account name", "lookup": "/name", "width": 16},
            {"header": "Discount share", "lookup": "/discount/ratio", "type": "number",
             "format": "0.00%"},
        ]
    return job
