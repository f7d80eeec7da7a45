"""User studies of the methods' talking-head videos: randomised A/B and MOS pages taken in a browser,
scored into the leaderboard with intervals.

  design.py   who sees what, in which order and on which side (seeded, counterbalanced, catch trials)
  media.py    the videos: found per method and clip, re-encoded to one size as H.264/AAC
  page.py     the static site (index.html + videos) raters open from disk or a web host
  make.py     `ksdiff study make`: the three above into studies/{name}/
  ratings.py  reading raters' files: study id, format and every answer checked
  stats.py    MOS, win rates, Bradley-Terry strengths, agreement, bootstrap over raters and clips
  score.py    `ksdiff study score`: ratings -> catch-trial exclusions -> studies/{name}/scores.parquet
  serve.py    `ksdiff study serve`: a lab's collection server (Flask) for the site and the ratings
  report.py   the leaderboard's user-study section (Markdown and HTML)
"""
