"""What the test modules share: paths, loopback servers and launchers, scripted model servers, the feed site
and small helpers. Test modules import from here, never from each other or from conftest.py (which only
registers fixtures)."""
