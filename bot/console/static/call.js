// The call page: the recording's waveform (caller above, bot below), the word or turn being
// heard highlighted as it plays, and a click on a turn plays from there.
(function () {
  const box = document.getElementById("waveform");
  if (!box || !window.WaveSurfer) return;
  const words = Array.from(document.querySelectorAll(".word[data-start]"));
  const turns = Array.from(document.querySelectorAll(".turn[data-start]"));
  const clock = document.getElementById("clock");
  const play = document.getElementById("play");
  const stats = (window.consoleStats = { time: 0, word: null, turn: null, ready: false });
  const ws = WaveSurfer.create({
    container: box,
    url: box.dataset.url,
    height: 56,
    splitChannels: [
      { waveColor: "#1565c0", progressColor: "#0d3c73" },
      { waveColor: "#2e7d32", progressColor: "#1b4d1f" },
    ],
    cursorColor: "#c62828",
    normalize: true,
  });
  let current = [];
  const mark = (elements) => {
    current.forEach((el) => el.classList.remove("playing"));
    current = elements;
    current.forEach((el) => el.classList.add("playing"));
  };
  const inside = (el, t) => t >= parseFloat(el.dataset.start) && t < parseFloat(el.dataset.end);
  const fmt = (t) => `${Math.floor(t / 60)}:${String(Math.floor(t % 60)).padStart(2, "0")}`;
  ws.on("ready", () => { stats.ready = true; });
  ws.on("timeupdate", (t) => {
    stats.time = t;
    clock.textContent = fmt(t);
    // The word being heard if the recogniser gave word times; the turn otherwise.
    const word = words.find((el) => inside(el, t));
    const turn = turns.filter((el) => inside(el, t)).pop();
    const lit = [];
    if (word) lit.push(word);
    if (turn) lit.push(turn);
    mark(lit);
    stats.word = word ? word.textContent : null;
    stats.turn = turn ? turn.id : null;
    if (turn && turn !== stats.scrolledTo) {
      stats.scrolledTo = turn;
      turn.scrollIntoView({ block: "nearest" });
    }
  });
  ws.on("play", () => { play.textContent = "Tạm dừng"; });
  ws.on("pause", () => { play.textContent = "Phát"; });
  play.addEventListener("click", () => ws.playPause());
  turns.forEach((el) => {
    el.addEventListener("click", (event) => {
      if (event.target.closest("form, details, a, button, select, input")) return;
      ws.setTime(parseFloat(el.dataset.start));
      ws.play();
    });
  });
  window.consoleWave = ws;
})();
