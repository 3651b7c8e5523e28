"""JUnit XML for CI systems: one test case per result, failures for warn/fail/error."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from nerve.quality._result import CheckResult, Status

__all__ = ["junit_xml"]


def junit_xml(results: list[CheckResult], suite: str = "nerve check") -> str:
    """A ``<testsuites>`` document; warnings are failures of type ``warn``."""
    failures = sum(r.status in (Status.fail, Status.warn) for r in results)
    errors = sum(r.status is Status.error for r in results)
    root = ET.Element("testsuites", name=suite, tests=str(len(results)),
                      failures=str(failures), errors=str(errors))
    node = ET.SubElement(root, "testsuite", name=suite, tests=str(len(results)),
                         failures=str(failures), errors=str(errors))
    for r in results:
        case = ET.SubElement(node, "testcase", classname=f"nerve.{r.check}", name=r.name)
        if r.status is Status.error:
            ET.SubElement(case, "error", message=r.message, type="error").text = r.message
        elif r.status in (Status.fail, Status.warn):
            ET.SubElement(case, "failure", message=r.message,
                          type=str(r.status)).text = r.message
        else:
            ET.SubElement(case, "system-out").text = r.message
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
