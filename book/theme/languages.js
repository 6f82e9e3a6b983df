// The language switcher: a link in the menu bar to the same page in each
// language the book is built in (scripts/i18n build puts English at the root
// and each translation in a directory named after its language).
(function () {
    "use strict";
    var languages = [["en", "English"], ["zh-CN", "中文"]];
    var here = document.documentElement.lang || "en";
    // path_to_root is "" for a page at the root: "./" is that directory.
    var root = new URL(path_to_root || "./", window.location.href).href;
    var page = window.location.href.slice(root.length).split("#")[0];
    // The English root: the translation's root is one directory below it.
    var english = here === "en" ? root : new URL("../", root).href;
    var bar = document.querySelector(".right-buttons");
    if (!bar) {
        return;
    }
    var nav = document.createElement("span");
    nav.id = "cfs-languages";
    languages.forEach(function (language) {
        var code = language[0];
        var link = document.createElement("a");
        link.textContent = language[1];
        link.lang = code;
        link.hreflang = code;
        link.href = english + (code === "en" ? "" : code + "/") + page;
        if (code === here) {
            link.setAttribute("aria-current", "true");
        }
        nav.appendChild(link);
    });
    bar.insertBefore(nav, bar.firstChild);

    // The labels the pages write in HTML (<summary> of a folded answer, hint
    // or listing), which the gettext catalogues cannot reach: translated here.
    var labels = {
        "zh-CN": {
            "Answer": "答案",
            "Speaker note": "讲师备注",
            "Hint": "提示",
            "Solution": "参考答案",
            "The same on cgroup v1 (or the hybrid layout)": "cgroup v1（或混合布局）上的同一过程",
            "The same run on cgroup v1 (or the hybrid layout)": "cgroup v1（或混合布局）上的同一次运行",
            "The same on a hybrid machine (cgroup2 at /sys/fs/cgroup/unified)":
                "混合布局的机器上的同一过程（cgroup2 挂载在 /sys/fs/cgroup/unified）",
            "On a machine with cgroup v1 (or the v1/v2 hybrid of older distributions)":
                "在使用 cgroup v1（或较旧发行版的 v1/v2 混合布局）的机器上"
        }
    }[here];
    // A folded listing: "The whole of <code>f</code> (N lines of <code>file</code>)".
    var listing = {
        "zh-CN": "$1 的全文（$3 中的 $2 行）"
    }[here];
    if (labels) {
        document.querySelectorAll("summary").forEach(function (summary) {
            var text = summary.textContent.trim();
            if (Object.prototype.hasOwnProperty.call(labels, text)) {
                summary.textContent = labels[text];
            } else if (listing) {
                summary.innerHTML = summary.innerHTML.replace(
                    /^\s*The whole of (<code[^>]*>.*?<\/code>) \((\d+) lines of (<code[^>]*>.*?<\/code>)\)\s*$/,
                    listing);
            }
        });
    }
})();
