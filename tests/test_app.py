"""The web demo through its API, as gradio_client sees it: app.py served on 127.0.0.1."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from omnibyte.web.service import QueueEstimate  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"
# outputs of /generate, in order
PROGRESS, IMAGE, AUDIO, TEXT, BYTE_MAP, PLOT, SEGMENTS, DOWNLOAD = range(8)


@pytest.fixture(scope="module")
def server():
    import app

    _, url, _ = app.launch(prevent_thread_lock=True, quiet=True)
    yield app, url
    app.demo.close()


@pytest.fixture(scope="module")
def client(server):
    return Client(server[1], verbose=False)


def generate(client, upload=None, raw=False, share=50, text="", ask="continue", max_bytes=24, temperature=1.0,
             top_k=0, top_p=1.0, seed=0, stop_at_end=True, guidance=1.0, valid_utf8=True, valid_media=True):
    return client.submit(handle_file(str(upload)) if upload else None, raw, share, text, ask, max_bytes,
                         temperature, top_k, top_p, seed, stop_at_end, guidance, valid_utf8, valid_media,
                         api_name="/generate")


def finished(job, timeout=60):
    outputs = job.result(timeout=timeout)
    return outputs, job.outputs()


def test_image_upload_streams_rows_then_shows_segments(client):
    outputs, updates = finished(generate(client, EXAMPLES / "red-circle.png", max_bytes=200))
    assert len(updates) >= 3  # the prompt notice, at least one live update, the analysis
    assert "200 / 200 bytes" in outputs[PROGRESS] and "Found 1 segment(s): image (bmp)" in outputs[PROGRESS]
    shown = [u[IMAGE] for u in updates if isinstance(u[IMAGE], dict) and u[IMAGE].get("value")]
    assert len(shown) == 1 and "filling from the bottom" in shown[0]["label"], "the live image is shown once, titled"
    # then only new pictures (plain values): a property update would rebuild the component each time
    assert [u[IMAGE] for u in updates if isinstance(u[IMAGE], str)], "the picture was never redrawn"
    assert "rows, filling from the bottom" in outputs[PROGRESS]  # the caption that changes, in the progress line
    assert 'data-modality="image"' in outputs[SEGMENTS] and "prompt to 1,590, generated after" in outputs[SEGMENTS]
    assert "ob-bar-piece" in outputs[BYTE_MAP] and "<svg" in outputs[PLOT]
    assert Path(outputs[DOWNLOAD]).suffix == ".bmp" and Path(outputs[DOWNLOAD]).stat().st_size == 1590 + 200


def test_sound_text_caption_gif_and_raw_each_work(client):
    # greedy and never stopping at DOC_END: what is checked is how each prompt kind is shown,
    # not what a sampled model writes (one may end the document at once, or switch modality)
    greedy = dict(max_bytes=16, temperature=0, stop_at_end=False)
    jobs = {
        "audio": generate(client, EXAMPLES / "melody.wav", **greedy),
        "text": generate(client, EXAMPLES / "bytes.txt", **greedy),
        "caption": generate(client, text="a red circle on a blue background", ask="image", **greedy),
        "video": generate(client, EXAMPLES / "moving-square.gif", **greedy),
        "raw": generate(client, EXAMPLES / "mixed.bin", raw=True, share=70, **greedy),
        "typed": generate(client, text="Once upon a time", **greedy),
        "start": generate(client, ask="audio", **greedy),
    }
    progress = {name: job.result(timeout=120)[PROGRESS] for name, job in jobs.items()}
    assert "audio:" in progress["audio"] and "text:" in progress["text"]
    assert "image:" in progress["caption"] and "video:" in progress["video"]
    assert "raw bytes:" in progress["raw"] and "audio:" in progress["start"]
    for name, text in progress.items():
        assert "16 / 16 bytes" in text or "the model ended the document" in text, (name, text)
        assert "Found " in text, (name, text)


def test_same_seed_same_output(client):
    first, _ = finished(generate(client, text="abc", max_bytes=32, seed=7))
    second, _ = finished(generate(client, text="abc", max_bytes=32, seed=7))
    assert Path(first[DOWNLOAD]).read_bytes() == Path(second[DOWNLOAD]).read_bytes()


# out-of-range slider values are refused by Gradio itself ("Value 1000000000 is greater than maximum
# value 16384."); values a slider allows but the model cannot use, by the app
@pytest.mark.parametrize("kwargs, message", [
    ({}, "nothing to continue"),
    ({"text": "x", "max_bytes": 10**9}, "greater than maximum value 16384"),
    ({"text": "x", "max_bytes": 2.5}, "whole number"),
    ({"text": "x", "temperature": -1}, "less than minimum value 0"),
    ({"text": "x", "top_p": 0}, "less than minimum value 0.05"),
    ({"text": "x", "top_k": -3}, "less than minimum value 0"),
    ({"text": "x", "ask": "smell"}, "(?i)smell"),
    ({"text": "x", "share": 500}, "greater than maximum value 100"),
    ({"text": "x", "seed": "abc"}, "Expected a `float | None`"),
    ({"text": "x", "guidance": 0.5}, "less than minimum value 1"),
])
def test_bad_parameters_get_a_clear_error(client, kwargs, message):
    with pytest.raises(AppError, match=message):
        generate(client, **kwargs).result(timeout=30)


def test_bad_files_get_a_clear_error_and_the_app_keeps_serving(client, tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    unknown = tmp_path / "blob.xyz"
    unknown.write_bytes(bytes(range(256)) * 8)
    nasty = Path(__file__).resolve().parent / "nasty"
    for path, message in ((empty, "empty"), (corrupt, "corrupt"), (unknown, "unsupported file type"),
                          (nasty / "bomb.png", "declares too many pixels"),
                          (nasty / "huge-frame.y4m", "declares 100000x100000 frames")):
        with pytest.raises(AppError, match=message):
            generate(client, path).result(timeout=30)
    outputs, _ = finished(generate(client, text="still here", max_bytes=8))
    assert "8 / 8 bytes" in outputs[PROGRESS]


def test_huge_upload_is_refused_before_it_is_read(client, tmp_path):
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as f:  # 200 MB, sparse: nothing is written but its length
        f.truncate(200 * 2**20)
    with pytest.raises(Exception, match="(?i)file size|too large|exceeds|limit"):
        generate(client, huge, raw=True).result(timeout=120)


def test_stop_cancels_at_once_and_frees_the_slot(client):
    jobs = [generate(client, text="long", max_bytes=16_000, seed=i, stop_at_end=False) for i in range(2)]
    deadline = time.monotonic() + 30
    while not all(len(job.outputs()) >= 2 for job in jobs) and time.monotonic() < deadline:
        time.sleep(0.05)
    for job in jobs:
        assert job.cancel() or job.done()
    # both generation slots must be free again: a short one finishes at once
    started = time.monotonic()
    outputs, _ = finished(generate(client, text="after stop", max_bytes=8), timeout=30)
    assert "8 / 8 bytes" in outputs[PROGRESS]
    assert time.monotonic() - started < 20
    for job in jobs:
        assert "16,000 / 16,000" not in (job.outputs()[-1][PROGRESS] if job.outputs() else "")


def test_eight_concurrent_clients_are_all_served(server):
    url = server[1]

    def one(i: int) -> str:
        job = generate(Client(url, verbose=False), text=f"client {i}", max_bytes=16, seed=i)
        return job.result(timeout=120)[PROGRESS]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    assert all("Found " in r for r in results)


def test_the_app_binds_to_localhost_unless_told_otherwise(server, monkeypatch):
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    app, url = server
    assert url.startswith("http://127.0.0.1:")
    assert app.demo.server_name == "127.0.0.1"


def test_compress_tab_round_trips_and_refuses_bad_files(client, tmp_path):
    report, compressed = client.predict(handle_file(str(EXAMPLES / "bytes.txt")), api_name="/compress")
    assert "| OmniByte |" in report and "| gzip -9 |" in report and Path(compressed).name == "bytes.txt.omb"
    message, restored = client.predict(handle_file(compressed), api_name="/decompress")
    assert "checksum matches" in message
    assert Path(restored).read_bytes() == (EXAMPLES / "bytes.txt").read_bytes()
    damaged = tmp_path / "damaged.omb"
    blob = bytearray(Path(compressed).read_bytes())
    blob[8] ^= 0xFF  # inside the stored checksum of the original
    damaged.write_bytes(bytes(blob))
    with pytest.raises(AppError, match="corrupt|checksum"):
        client.predict(handle_file(str(damaged)), api_name="/decompress")
    with pytest.raises(AppError, match="not an OmniByte compressed file"):
        client.predict(handle_file(str(EXAMPLES / "melody.wav")), api_name="/decompress")
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 20_000)
    with pytest.raises(AppError, match="the limit is 16,384 bytes"):
        client.predict(handle_file(str(big)), api_name="/compress")


def test_the_compress_tab_and_the_command_line_read_each_others_files(client, tmp_path):
    from omnibyte.cli import main

    original = EXAMPLES / "bytes.txt"
    _, from_tab = client.predict(handle_file(str(original)), api_name="/compress")
    assert main(["decompress", from_tab, str(tmp_path / "restored.txt"), "--quiet"]) == 0
    assert (tmp_path / "restored.txt").read_bytes() == original.read_bytes()
    assert main(["compress", str(original), str(tmp_path / "cli.omb"), "--quiet"]) == 0
    assert (tmp_path / "cli.omb").read_bytes() == Path(from_tab).read_bytes()
    _, restored = client.predict(handle_file(str(tmp_path / "cli.omb")), api_name="/decompress")
    assert Path(restored).read_bytes() == original.read_bytes()


def test_a_server_path_sent_instead_of_an_upload_is_refused(server):
    # a request can name any path; Gradio lets handlers see only files a user uploaded. Raw HTTP:
    # gradio_client would upload a local path from the client side, which is fine
    import httpx

    _, url = server
    payload = {"data": [{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}, "orig_name": "passwd"}]}
    event = httpx.post(url + "gradio_api/call/compress", json=payload, timeout=30).json()["event_id"]
    answer = httpx.get(url + f"gradio_api/call/compress/{event}", timeout=60).text
    assert "event: error" in answer and "not uploaded by a user" in answer
    assert "root:" not in answer


def test_download_names_from_users_stay_inside_the_output_folder(server):
    app, _ = server
    for name in ["../../etc/passwd", "/tmp/x.omb", "a/b/../c.txt", "..", "", "$(reboot);`id`.txt", "\x00x"]:
        path = Path(app.save_output(b"data", name)).resolve()
        assert path.is_relative_to(app.OUTPUT_DIR.resolve()) and path.read_bytes() == b"data"
        assert path.parent.parent == app.OUTPUT_DIR.resolve()  # a fresh folder of its own, one level down


def test_describe_prompt_and_inspect_are_named_endpoints(client, tmp_path):
    summary, preview, max_bytes = client.predict(handle_file(str(EXAMPLES / "red-circle.png")), False, 50, "",
                                                 "continue", api_name="/describe_prompt")
    assert "continues **image**" in summary and "<img" in preview and max_bytes == 1536
    found, byte_map, plot, cards = client.predict(handle_file(str(EXAMPLES / "mixed.bin")), api_name="/inspect")
    assert len(found) >= 2 and found[0]["start"] == 0 and found[-1]["end"] == (EXAMPLES / "mixed.bin").stat().st_size
    assert {"start", "end", "modality", "format", "confidence"} <= set(found[0])
    assert "ob-bar-piece" in byte_map and "<svg" in plot and "data-modality" in cards
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(AppError, match="empty"):
        client.predict(handle_file(str(empty)), api_name="/inspect")
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 70_000)
    with pytest.raises(AppError, match="the limit is 65,536 bytes"):
        client.predict(handle_file(str(big)), api_name="/inspect")


def test_the_api_page_lists_only_named_endpoints_with_labelled_outputs():
    # build_demo takes any model: a tiny untrained one here, and importing app loaded nothing
    import app
    from omnibyte.web.service import DemoModel
    from tests.conftest import tiny_model

    demo = app.build_demo(DemoModel(tiny_model(), "a tiny test model", trained=False))
    _, url, _ = app.launch(demo, prevent_thread_lock=True, quiet=True)
    try:
        api = Client(url, verbose=False).view_api(return_format="dict", print_info=False)
    finally:
        demo.close()
    assert set(api["named_endpoints"]) == {"/generate", "/describe_prompt", "/inspect", "/compress", "/decompress"}
    assert not api["unnamed_endpoints"]
    for name, endpoint in api["named_endpoints"].items():
        labels = [p["label"] for p in endpoint["parameters"]] + [r["label"] for r in endpoint["returns"]]
        assert all(label and not label.startswith("value_") for label in labels), (name, labels)
    assert [r["label"] for r in api["named_endpoints"]["/generate"]["returns"]][:2] == ["Progress", "Live image"]


def test_user_errors_says_what_to_fix_and_keeps_serving_after_a_bug():
    import gradio as gr

    import app
    from omnibyte.errors import OmniByteError

    @app.user_errors("testing")
    def plain(kind):
        raise OmniByteError("choose a file") if kind == "user" else ValueError("a bug")

    @app.user_errors("testing")
    def stream(kind):
        yield 1
        plain(kind)

    for call in (plain, lambda kind: list(stream(kind))):
        with pytest.raises(gr.Error) as user:
            call("user")
        assert user.value.message == "choose a file"
        with pytest.raises(gr.Error) as bug:
            call("bug")
        assert bug.value.message == "internal error (ValueError: a bug); the app is still running"


def test_the_readmes_gradio_client_example_runs_as_written(server):
    # the README's snippet, pointed at this test's server: a captioned picture, then inspected
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    blocks = [b.split("```")[0] for b in readme.split("```python\n")[1:]]
    snippet = next(b for b in blocks if "gradio_client" in b)
    namespace = {}
    exec(snippet.replace("http://127.0.0.1:7860/", server[1]), namespace)  # noqa: S102
    assert Path(namespace["download"]).stat().st_size > 1590  # the caption, then the picture
    assert namespace["segments"][0]["modality"] == "text" and namespace["segments"][-1]["modality"] == "image"


def test_live_updates_rebuild_components_only_when_a_part_is_shown():
    # any update that is not a plain value (a component, gr.skip()) makes Gradio rebuild that
    # component on the event loop while the model writes: only showing a new part may send them
    import numpy as np

    import app
    from omnibyte.web.views import LiveView

    def is_update(value):
        return not (value is None or isinstance(value, (np.ndarray, list, tuple)))

    text = LiveView("text", "text", text=[("hi", "prompt")])
    picture = LiveView("image", "image 32 x 32", image=np.zeros((32, 32, 3), np.uint8))
    sound = LiveView("audio", "sound", audio=(8000, np.zeros(100, np.int16)))
    assert all(is_update(u) for u in app._live_updates(None))  # before the model starts: hide all
    shown = app._live_updates(text, show=True)
    assert [u.visible for u in shown[2:]] == [True] and shown[:2] == (None, None)
    assert not any(is_update(u) for u in app._live_updates(text, show=False, shown_kind="text"))
    switched = app._live_updates(picture, show=True, shown_kind="text")
    assert switched[0].visible is True and switched[1] is None and switched[2].visible is False
    between = app._live_updates(picture, show=False, shown_kind="image")
    assert between[0] is picture.image and between[1:] == (None, None)
    # the sound's player is not reloaded between its rare updates: the one skip left
    assert app._live_updates(sound, show=False, audio_now=False, shown_kind="audio")[1] == {"__type__": "update"}
    assert app._live_updates(sound, show=False, audio_now=True, shown_kind="audio")[1] is sound.audio


def test_the_queue_looks_for_work_less_often_than_gradios_default(server):
    # Gradio's own 1 ms poll costs an idle 2-core server several percent of a core (app.py)
    app, _ = server
    queue = app.demo._queue
    if not hasattr(queue, "sleep_when_free"):
        pytest.skip("this Gradio's queue has no poll interval to set")
    assert queue.sleep_when_free == app.QUEUE_POLL_S > 0.001
    assert queue.progress_update_sleep_when_free == app.QUEUE_PROGRESS_POLL_S > 0.01


def test_waiting_visitors_are_told_the_apps_estimate_not_gradios_mean(client, server):
    # Gradio's mean of past durations runs short when visitors wait (service.QueueEstimate)
    app, _ = server
    queue = app.demo._queue
    if not hasattr(queue, "process_time_per_fn"):
        pytest.skip("this Gradio's queue keeps no table of durations")
    finished(generate(client, text="time me", max_bytes=8))
    estimates = [e for fn, e in queue.process_time_per_fn.items() if fn.api_name == "generate"]
    assert len(estimates) == 1 and isinstance(estimates[0], QueueEstimate) and estimates[0].avg_time > 0
