/**
 * One column per actor: the state it is in, what it waits for (the model's
 * `waitingFor`), and the events enabled for it, in the model's uAPI words;
 * each is a link to the state after it.
 */
import type { ActorView } from '../shared/api.ts';

export interface ActorsProps {
  readonly actors: readonly ActorView[];
  readonly fire: (token: string) => string;
}

function Actor({ actor, fire }: { actor: ActorView; fire: ActorsProps['fire'] }) {
  return (
    <section class={`actor${actor.terminated ? ' terminated' : ''}`} data-actor={actor.name}>
      <h3>{actor.name}</h3>
      <div class="in">
        in <b class="state-name">{actor.state}</b>
        {actor.terminated && <span class="tag">terminated</span>}
      </div>
      {actor.waiting && (
        <div class="waiting" data-waiting={actor.name}>
          <span class="label">waits:</span> {actor.waiting}
        </div>
      )}
      {actor.enabled.length > 0 ? (
        <ul class="events">
          {actor.enabled.map((e) => (
            <li key={e.token}>
              <a class="event" href={fire(e.token)} data-event={e.token} title={`fire ${e.token}`}>
                {e.label}
              </a>
              {e.actors.length > 1 && (
                <span class="with"> with {e.actors.filter((a) => a !== actor.name).join(', ')}</span>
              )}
            </li>
          ))}
        </ul>
      ) : (
        <p class="none">no event enabled</p>
      )}
    </section>
  );
}

export function Actors({ actors, fire }: ActorsProps) {
  return (
    <div class="actors">
      {actors.map((a) => (
        <Actor key={a.name} actor={a} fire={fire} />
      ))}
    </div>
  );
}
