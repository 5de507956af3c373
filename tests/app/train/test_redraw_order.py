"""While runs train, the plots redraw one panel per tick (see TrainPlots.redraw)."""


def test_the_loss_curve_takes_every_other_tick_while_it_has_news(ws, train_in):
    run = train_in(ws, "linreg", 2)
    p = ws.plots
    drawn = []
    panel = p._panel
    p._panel = lambda name, force=False: (drawn.append(name), panel(name, force))
    run.dirty.update({"lr", "info", "val"})
    for _ in range(6):
        run.dirty.add("loss")  # new steps arrive before every tick
        p.redraw()
    # every other tick is the loss curve's; the others take turns in between
    assert drawn.count("loss") == 3 and set(drawn) == {"loss", "lr", "val", "info"}, drawn
    assert all("loss" in pair for pair in zip(drawn, drawn[1:], strict=False)), drawn
    p.redraw()  # only the loss curve has news: it is drawn again
    assert drawn[-1] == "loss" and not run.dirty
