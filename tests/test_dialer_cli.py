import json
import subprocess
import sys

from repo import REPO


def cli(redis_url, *args):
    env_args = ["--redis", redis_url, "--prefix", "t:"]
    cmd = [sys.executable, "-c", "import sys; from callcenter.cli import main; sys.exit(main(sys.argv[1:]))",
           "campaign", *args, *env_args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={"PYTHONPATH": str(REPO)},
                          timeout=120)


def test_upload_with_progress_then_start_and_stats(redis_url, tmp_path):
    f = tmp_path / "list.csv"
    rows = ["phone,name"] + [f"09{i:08d},Khách {i}" for i in range(12000)] + ["bad,x"]
    f.write_text("\n".join(rows) + "\n", encoding="utf-8-sig")
    rejects = tmp_path / "rejects.csv"
    up = cli(redis_url, "upload", str(f), "--campaign", "telesales_demo", "--rejects", str(rejects))
    assert up.returncode == 0, up.stderr
    assert "accepted (new contacts): 12000" in up.stdout and "line 12002: unexpected character" in up.stdout
    assert "parsing:" in up.stderr and "importing: 100%" in up.stderr
    assert rejects.read_text(encoding="utf-8-sig").splitlines()[1].startswith("12002,")
    again = cli(redis_url, "upload", str(f), "--campaign", "telesales_demo", "--json")
    assert json.loads(again.stdout)["merged_existing"] == 12000
    assert cli(redis_url, "start", "telesales_demo").stdout.strip() == "telesales_demo: running"
    st = json.loads(cli(redis_url, "stats", "telesales_demo", "--json").stdout)
    assert st["state"] == "running" and st["pending"] == 12000
    ls = cli(redis_url, "list")
    assert "telesales_demo" in ls.stdout and "running" in ls.stdout
    big = cli(redis_url, "upload", str(f), "--campaign", "telesales_demo", "--max-rows", "100")
    assert big.returncode == 2 and "more than 100 rows" in big.stderr
    missing = cli(redis_url, "upload", str(f), "--campaign", "nope")
    assert missing.returncode != 0 and "no campaign 'nope'" in missing.stderr
