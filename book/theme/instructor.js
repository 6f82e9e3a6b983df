// The instructor view: shows the speaker notes (details.speaker-note) that
// instructor.css hides from learners, and opens them and every exercise's
// solution and quiz answer (the answer key, in place). A button in the menu
// bar switches it on and off, remembered in localStorage; ?instructor in the
// address switches it on, ?learner off (for a projector: the notes stay on
// the instructor's own screen).
(function () {
    "use strict";
    var key = "cfs-instructor-view";
    // The button's words, in the page's language (scripts/i18n builds).
    var words = {
        "zh-CN": {
            hide: "隐藏讲师备注（学习者视图）",
            show: "显示讲师备注（讲师视图）",
            label: "讲师视图"
        }
    }[document.documentElement.lang] || {
        hide: "Hide the speaker notes (learner view)",
        show: "Show the speaker notes (instructor view)",
        label: "Instructor view"
    };
    var params = new URLSearchParams(window.location.search);
    var stored = null;
    try {
        if (params.has("instructor")) {
            window.localStorage.setItem(key, "1");
        } else if (params.has("learner")) {
            window.localStorage.removeItem(key);
        }
        stored = window.localStorage.getItem(key);
    } catch (e) {
        // No storage (a file:// page in some browsers): the address decides.
        stored = params.has("instructor") ? "1" : null;
    }

    function apply(on) {
        document.documentElement.classList.toggle("instructor", on);
        var notes = document.querySelectorAll(
            "details.speaker-note, details.solution, details.answer");
        for (var i = 0; i < notes.length; i++) {
            notes[i].open = on;
        }
        var button = document.getElementById("cfs-instructor-toggle");
        if (button) {
            button.setAttribute("aria-pressed", on ? "true" : "false");
            button.title = on ? words.hide : words.show;
        }
    }

    function addButton() {
        var bar = document.querySelector(".right-buttons");
        if (!bar) {
            return;
        }
        var button = document.createElement("button");
        button.id = "cfs-instructor-toggle";
        button.className = "icon-button";
        button.type = "button";
        button.setAttribute("aria-label", words.label);
        // A mortarboard, drawn as the menu bar's other icons are (an inline
        // SVG in a span.fa-svg): Material Icons' "school" (Apache-2.0).
        var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
        svg.setAttribute("viewBox", "0 0 24 24");
        var path = document.createElementNS("http://www.w3.org/2000/svg", "path");
        path.setAttribute("d", "M5 13.18v4L12 21l7-3.82v-4L12 17l-7-3.82zM12 3L1 9l11 6 9-4.91V17h2V9L12 3z");
        path.setAttribute("fill", "currentColor");
        svg.appendChild(path);
        var icon = document.createElement("span");
        icon.className = "fa-svg";
        icon.appendChild(svg);
        button.appendChild(icon);
        button.addEventListener("click", function () {
            var on = !document.documentElement.classList.contains("instructor");
            try {
                if (on) {
                    window.localStorage.setItem(key, "1");
                } else {
                    window.localStorage.removeItem(key);
                }
            } catch (e) {
                // Not remembered: this page only.
            }
            apply(on);
        });
        bar.insertBefore(button, bar.firstChild);
    }

    addButton();
    apply(stored === "1");
})();
