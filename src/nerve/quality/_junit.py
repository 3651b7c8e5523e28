"""JUnit XML for CI systems: one test case per result; only failures fail.

A warning passes, its sentence in the case's ``system-out`` (as ``nerve catalog lint
--format junit`` does), so a CI report is red for what fails the build (exit 1) and not
for what ``|| [ $? -eq 3 ]`` lets through.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from nerve.quality._result import CheckResult, Status

__all__ = ["junit_xml"]


def junit_xml(results: list[CheckResult], suite: str = "nerve check") -> str:
    """A ``<testsuites>`` document: ``fail`` is a failure, ``error`` an error, ``warn`` and
    ``pass`` pass (a warning's ``system-out`` starts with ``warn:``)."""
    failures = sum(r.status is Status.fail for r in results)
    errors = sum(r.status is Status.error for r in results)
    root = ET.Element("testsuites", name=suite, tests=str(len(results)),
                      failures=str(failures), errors=str(errors))
    node = ET.SubElement(root, "testsuite", name=suite, tests=str(len(results)),
                         failures=str(failures), errors=str(errors))
    for r in results:
        case = ET.SubElement(node, "testcase", classname=f"nerve.{r.check}", name=r.name)
        if r.status is Status.error:
            ET.SubElement(case, "error", message=r.message, type="error").text = r.message
        elif r.status is Status.fail:
            ET.SubElement(case, "failure", message=r.message, type="fail").text = r.message
        elif r.status is Status.warn:
            ET.SubElement(case, "system-out").text = f"warn: {r.message}"
        else:
            ET.SubElement(case, "system-out").text = r.message
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
