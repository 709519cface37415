// The softphone page: microphone -> 16 kHz PCM16 frames -> the bot's WebSocket; the bot's
// 20 ms frames -> Web Audio, scheduled back to back; the live transcript and the keypad.
// The protocol is described in bot/transports/softphone.py.

"use strict";

(() => {
  const RATE = 16000;
  const JITTER_S = 0.08; // cushion before the first frame of a reply: absorbs network jitter
  const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  const BRANCH_HINTS = {
    1: "Cấp cứu 115",
    2: "CDC Hà Nội",
    3: "Bác sĩ tư vấn",
    4: "Phản ánh vi phạm",
    5: "An sinh xã hội",
    6: "Nhu yếu phẩm",
    0: "Tổng đài viên",
    "*": "Nghe lại",
  };
  // Keypad tones (ITU-T Q.23): what a caller expects to hear when pressing a key.
  const DTMF_TONES = {
    1: [697, 1209], 2: [697, 1336], 3: [697, 1477],
    4: [770, 1209], 5: [770, 1336], 6: [770, 1477],
    7: [852, 1209], 8: [852, 1336], 9: [852, 1477],
    "*": [941, 1209], 0: [941, 1336], "#": [941, 1477],
  };

  const $ = (id) => document.getElementById(id);
  const callButton = $("call-button");
  const statusText = $("status-text");
  const timerText = $("timer");
  const callIdText = $("call-id");
  const transcript = $("transcript");
  const emptyNote = $("transcript-empty");
  const decision = $("decision");
  const problem = $("problem");
  const level = $("mic-level");

  // Counters for whoever watches the page (the browser test reads them).
  const stats = { framesSent: 0, framesReceived: 0, bytesReceived: 0, capture: "" };
  window.softphoneStats = stats;

  let phase = "idle"; // idle -> connecting -> in-call -> ended
  let ws = null;
  let ctx = null;
  let stream = null;
  let captureNodes = [];
  let playing = new Set();
  let nextTime = 0;
  let partialRow = null;
  let lastBotRow = null;
  let timer = null;
  let startedAt = 0;

  // --- page state ------------------------------------------------------------------

  function setPhase(next, text) {
    phase = next;
    document.body.dataset.phase = next;
    statusText.textContent = text;
    const active = next === "connecting" || next === "in-call";
    callButton.textContent = active ? "Gác máy" : "Gọi";
    callButton.classList.toggle("hangup", active);
    callButton.setAttribute("aria-label", active ? "Gác máy" : "Gọi tổng đài 1022");
    for (const key of document.querySelectorAll(".key")) key.disabled = next !== "in-call";
  }

  function showProblem(text) {
    problem.textContent = text;
    problem.hidden = !text;
  }

  function showDecision(text, kind) {
    decision.textContent = text;
    decision.className = "decision " + kind;
    decision.hidden = false;
  }

  function tick() {
    const seconds = Math.floor((Date.now() - startedAt) / 1000);
    const mm = String(Math.floor(seconds / 60)).padStart(2, "0");
    const ss = String(seconds % 60).padStart(2, "0");
    timerText.textContent = `${mm}:${ss}`;
  }

  // --- transcript ------------------------------------------------------------------

  function addRow(who, text, extraClass) {
    emptyNote.hidden = true;
    const row = document.createElement("li");
    row.className = `row ${who}` + (extraClass ? ` ${extraClass}` : "");
    if (who !== "note") {
      const label = document.createElement("span");
      label.className = "who";
      label.textContent = who === "bot" ? "Tổng đài" : "Người gọi";
      row.append(label);
    }
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    row.append(body);
    transcript.append(row);
    row.scrollIntoView({ block: "end" });
    return row;
  }

  function setRowText(row, text) {
    row.querySelector(".text").textContent = text;
  }

  function branchLabel(route, branch) {
    if (route === "operator") return "tổng đài viên";
    const number = route.split(":")[1];
    return branch ? `nhánh ${number} · ${branch}` : `nhánh ${number}`;
  }

  function onEvent(event) {
    const text = event.text || "";
    switch (event.kind) {
      case "partial":
        if (!text) break;
        if (partialRow) setRowText(partialRow, text);
        else partialRow = addRow("caller", text, "partial");
        break;
      case "heard":
        if (partialRow) {
          partialRow.classList.remove("partial");
          setRowText(partialRow, text);
          partialRow = null;
        } else {
          addRow("caller", text, "heard");
        }
        break;
      case "say":
        lastBotRow = addRow("bot", text);
        break;
      case "response_latency":
        if (lastBotRow && event.latency_ms !== undefined) {
          lastBotRow.dataset.latency = `phản hồi sau ${Math.round(event.latency_ms)} ms`;
        }
        break;
      case "barge_in":
        addRow("note", "Tổng đài dừng nói để nghe anh chị.");
        break;
      case "digit":
        addRow("note", `Anh chị bấm phím ${text}.`);
        break;
      case "silence":
        addRow("note", "Tổng đài chưa nghe thấy anh chị nói gì.");
        break;
      case "emergency_from_partial":
        addRow("note", "Nhận ra tình huống khẩn cấp: chuyển máy ngay.", "urgent");
        break;
      case "transfer":
        if (event.route) addRow("note", `Quyết định: chuyển máy tới ${branchLabel(event.route)}.`);
        break;
      case "error":
        addRow("note", "Tổng đài gặp sự cố kỹ thuật.", "urgent");
        break;
      default:
        break; // bookkeeping notes (queued, dropped, ...) are for the supervisor, not here
    }
  }

  // --- bot audio -------------------------------------------------------------------

  function playFrame(data) {
    stats.framesReceived += 1;
    stats.bytesReceived += data.byteLength;
    if (!ctx || phase !== "in-call") return;
    const view = new DataView(data);
    const samples = data.byteLength >> 1;
    if (!samples) return;
    const buffer = ctx.createBuffer(1, samples, RATE); // Web Audio resamples to the device
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < samples; i++) channel[i] = view.getInt16(2 * i, true) / 32768;
    const source = ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(ctx.destination);
    const now = ctx.currentTime;
    if (nextTime < now + 0.01) nextTime = now + JITTER_S; // a new reply, or an underrun
    source.start(nextTime);
    nextTime += buffer.duration;
    playing.add(source);
    source.onended = () => playing.delete(source);
  }

  function stopPlayback() {
    for (const source of playing) {
      try {
        source.stop();
      } catch (e) {
        // already stopped
      }
    }
    playing.clear();
    nextTime = 0;
  }

  // --- microphone --------------------------------------------------------------------

  function sendFrame(frame) {
    if (!ws || ws.readyState !== WebSocket.OPEN || phase !== "in-call") return;
    if (!LITTLE_ENDIAN) {
      const view = new DataView(frame.buffer);
      for (let i = 0; i < frame.length; i++) view.setInt16(2 * i, frame[i], true);
    }
    ws.send(frame.buffer);
    stats.framesSent += 1;
    let sum = 0;
    for (let i = 0; i < frame.length; i += 4) sum += (frame[i] / 32768) ** 2;
    const rms = Math.sqrt(sum / (frame.length / 4));
    level.value = Math.min(1, rms * 4);
  }

  async function startCapture() {
    const source = ctx.createMediaStreamSource(stream);
    // A silent sink: browsers only run processing nodes that lead to the destination.
    const sink = ctx.createGain();
    sink.gain.value = 0;
    sink.connect(ctx.destination);
    if (ctx.audioWorklet && typeof AudioWorkletNode !== "undefined") {
      await ctx.audioWorklet.addModule("/softphone/static/capture.js");
      const node = new AudioWorkletNode(ctx, "pcm16-capture");
      node.port.onmessage = (e) => sendFrame(new Int16Array(e.data));
      source.connect(node).connect(sink);
      captureNodes = [source, node, sink];
      stats.capture = "audioworklet";
    } else {
      // Older browsers: the main thread does the work, in 4096-sample blocks.
      const downsampler = new window.Pcm16Downsampler(ctx.sampleRate);
      const node = ctx.createScriptProcessor(4096, 1, 1);
      node.onaudioprocess = (e) => {
        for (const frame of downsampler.process(e.inputBuffer.getChannelData(0))) sendFrame(frame);
      };
      source.connect(node).connect(sink);
      captureNodes = [source, node, sink];
      stats.capture = "scriptprocessor";
    }
  }

  function stopCapture() {
    for (const node of captureNodes) {
      try {
        node.disconnect();
      } catch (e) {
        // not connected
      }
      if (node.port) node.port.onmessage = null;
    }
    captureNodes = [];
    if (stream) for (const track of stream.getTracks()) track.stop();
    stream = null;
    level.value = 0;
  }

  // --- the call ------------------------------------------------------------------------

  async function startCall() {
    showProblem("");
    decision.hidden = true;
    transcript.replaceChildren();
    emptyNote.hidden = false;
    partialRow = lastBotRow = null;
    callIdText.textContent = "";
    timerText.textContent = "00:00";
    setPhase("connecting", "Đang kết nối…");
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      fail("Trình duyệt không cho dùng micro. Anh chị vui lòng mở trang qua HTTPS hoặc localhost.");
      return;
    }
    // Made inside the click, so the browser lets it play sound.
    const context = new (window.AudioContext || window.webkitAudioContext)({
      latencyHint: "interactive",
    });
    ctx = context;
    let microphone;
    try {
      // Echo cancellation keeps the bot's own voice, from the speakers, out of the micro:
      // otherwise it would interrupt itself (barge-in).
      microphone = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
      await context.resume();
    } catch (e) {
      if (phase === "connecting") {
        fail(`Không mở được micro (${e.name || e}). Anh chị vui lòng cho phép trang dùng micro rồi gọi lại.`);
      }
      return;
    }
    if (phase !== "connecting") {
      // Hung up while the browser was asking for the micro.
      for (const track of microphone.getTracks()) track.stop();
      return;
    }
    stream = microphone;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${scheme}//${location.host}/ws`);
    ws.binaryType = "arraybuffer";
    ws.onopen = async () => {
      ws.send(JSON.stringify({ type: "start" }));
      setPhase("in-call", "Đang trong cuộc gọi");
      startedAt = Date.now();
      timer = setInterval(tick, 1000);
      try {
        await startCapture();
      } catch (e) {
        showProblem(`Không ghi được tiếng từ micro (${e.name || e}). Anh chị vẫn có thể bấm phím.`);
      }
    };
    ws.onmessage = (e) => {
      if (typeof e.data !== "string") {
        playFrame(e.data);
        return;
      }
      let message;
      try {
        message = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      onMessage(message);
    };
    ws.onclose = () => {
      if (phase === "connecting" || phase === "in-call") {
        endCall("Mất kết nối");
        if (problem.hidden) showProblem("Mất kết nối với tổng đài. Anh chị vui lòng gọi lại.");
      }
    };
  }

  function onMessage(message) {
    switch (message.type) {
      case "started":
        callIdText.textContent = `Mã cuộc gọi: ${message.call_id}`;
        break;
      case "event":
        onEvent(message);
        break;
      case "stop":
        stopPlayback(); // barge-in: the bot stops talking at once
        break;
      case "transfer":
        showDecision(`Đang chuyển máy tới ${branchLabel(message.route, message.branch)}`, "transfer");
        endCall("Đã chuyển máy", true);
        break;
      case "hangup":
        showDecision("Tổng đài đã kết thúc cuộc gọi. Cảm ơn anh chị đã gọi 1022.", "hangup");
        endCall("Cuộc gọi đã kết thúc", true);
        break;
      case "error":
        showProblem(`Lỗi kết nối với tổng đài: ${message.message}`);
        break;
      default:
        break;
    }
  }

  function endCall(text, letAudioFinish) {
    if (phase === "ended" || phase === "idle") return;
    setPhase("ended", text);
    clearInterval(timer);
    stopCapture();
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
    ws = null;
    const context = ctx;
    ctx = null;
    // The bot's last words (the transfer notice) are already scheduled: let them finish.
    const remaining = letAudioFinish && context ? Math.max(0, nextTime - context.currentTime) : 0;
    if (!letAudioFinish) stopPlayback();
    playing = new Set();
    nextTime = 0;
    if (context) setTimeout(() => context.close(), remaining * 1000 + 200);
  }

  function hangUp() {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "hangup" }));
    showDecision("Anh chị đã gác máy.", "hangup");
    endCall("Cuộc gọi đã kết thúc", false);
  }

  function fail(text) {
    showProblem(text);
    setPhase("ended", "Chưa gọi được");
    stopCapture();
    if (ctx) ctx.close();
    ctx = null;
  }

  // --- keypad ----------------------------------------------------------------------------

  function beep(digit) {
    const tones = DTMF_TONES[digit];
    if (!ctx || !tones) return;
    const gain = ctx.createGain();
    gain.gain.value = 0.05;
    gain.connect(ctx.destination);
    const end = ctx.currentTime + 0.12;
    for (const frequency of tones) {
      const osc = ctx.createOscillator();
      osc.frequency.value = frequency;
      osc.connect(gain);
      osc.start();
      osc.stop(end);
    }
  }

  function press(digit) {
    if (phase !== "in-call" || !ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify({ type: "dtmf", digit }));
    beep(digit);
    const key = document.querySelector(`.key[data-digit="${CSS.escape(digit)}"]`);
    if (key) {
      key.classList.add("pressed");
      setTimeout(() => key.classList.remove("pressed"), 150);
    }
  }

  for (const key of document.querySelectorAll(".key")) {
    const hint = BRANCH_HINTS[key.dataset.digit];
    if (hint) {
      const small = document.createElement("small");
      small.textContent = hint;
      key.append(small);
      key.title = hint;
    }
    key.addEventListener("click", () => press(key.dataset.digit));
  }

  document.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLInputElement || e.repeat) return;
    if (/^[0-9*#]$/.test(e.key)) press(e.key);
  });

  callButton.addEventListener("click", () => {
    if (phase === "connecting" || phase === "in-call") hangUp();
    else startCall();
  });

  setPhase("idle", "Sẵn sàng");
})();
