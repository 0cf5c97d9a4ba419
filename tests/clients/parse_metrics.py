"""Reads an OpenMetrics scrape on stdin with the official Prometheus Python
client's parser (strict: it refuses text that breaks the format) and prints
its samples as JSON: [{"family", "name", "labels", "value"}, ...].

Used by tests/integration/metrics.rs.
"""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def main():
    samples = []
    for family in text_string_to_metric_families(sys.stdin.read()):
        for sample in family.samples:
            samples.append(
                {
                    "family": family.name,
                    "name": sample.name,
                    "labels": sample.labels,
                    "value": sample.value,
                }
            )
    json.dump(samples, sys.stdout)


if __name__ == "__main__":
    main()
