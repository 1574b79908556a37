"""CITATION.cff is valid YAML of CFF 1.2.0, agrees with setup.cfg (version, license) and cites the VividTalk paper;
setup.cfg ships the Apache-2.0 LICENSE."""

import configparser

import yaml

from tests.helpers import ROOT

SETUP = configparser.ConfigParser()
SETUP.read(ROOT / "setup.cfg")


def test_citation_matches_setup_cfg_and_cites_the_paper():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    metadata = SETUP["metadata"]
    assert (citation["cff-version"], citation["type"], citation["title"]) == ("1.2.0", "software", metadata["name"])
    assert (citation["version"], citation["license"]) == (metadata["version"], metadata["license"])
    (paper,) = citation["references"]
    assert paper["title"].startswith("VividTalk: One-Shot Audio-Driven Talking Head Generation")
    assert (paper["year"], len(paper["authors"]), paper["authors"][0]["family-names"]) == (2023, 10, "Sun")
    assert {identifier["value"] for identifier in paper["identifiers"]} == {
        "arXiv:2312.01841",
        "10.48550/arXiv.2312.01841",
    }


def test_license_file_is_apache_2():
    license_file = ROOT / SETUP["metadata"]["license_files"]
    lines = [line.strip() for line in license_file.read_text().splitlines()[:3]]
    assert lines == ["", "Apache License", "Version 2.0, January 2004"]
    assert SETUP["metadata"]["license"] == "Apache-2.0"
